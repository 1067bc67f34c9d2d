"""Catalogue records matched against the conditions a visitor states (`RecordIndex`) and the
rule-based query that uses them for a request by properties."""

from __future__ import annotations

import dataclasses

from kefu_memory import EntityIndex, Turn, build_query
from kefu_memory.records import RecordIndex

HOTELS = {
    "如意酒店（酒店）": ("酒店类型：经济型\n\n酒店设施：无烟房、叫醒服务\n\n价格：260\n\n"
                        "评分：4.6\n\n周边景点：故宫、天坛"),
    "金都大酒店（酒店）": ("酒店类型：豪华型\n\n酒店设施：无烟房、健身房、免费市内电话\n\n"
                          "价格：1200\n\n评分：4.8\n\n周边景点：故宫"),
    "平安旅馆（酒店）": ("酒店类型：经济型\n\n酒店设施：叫醒服务\n\n价格：180\n\n"
                        "评分：4.1\n\n周边景点：颐和园"),
    "故宫（景点）": ("门票：60\n\n游玩时间：3小时 - 4小时\n\n评分：4.7\n\n"
                    "周边酒店：如意酒店、金都大酒店"),
    "天坛（景点）": "门票：15\n\n游玩时间：2小时\n\n评分：4.5\n\n周边酒店：如意酒店",
    "颐和园（景点）": "门票：30\n\n游玩时间：1天\n\n评分：4.7\n\n周边酒店：平安旅馆",
    "老北京面馆（餐馆）": "推荐菜：炸酱面、卤煮\n\n人均消费：45\n\n评分：4.4\n\n周边景点：天坛",
    "全鸭季（餐馆）": "推荐菜：烤鸭、炸酱面\n\n人均消费：180\n\n评分：4.7\n\n周边景点：故宫",
    "小吃城（餐馆）": "推荐菜：卤煮、豆汁\n\n人均消费：30\n\n评分：4.0\n\n周边景点：颐和园",
}
CHUNKS = [(f"{title}.md", title, body) for title, body in HOTELS.items()]
ENTITIES = EntityIndex.from_headings([(d, h) for d, h, _ in CHUNKS])
RECORDS = RecordIndex.from_chunks(CHUNKS, ENTITIES.kinds)


def user(text: str) -> Turn:
    return Turn(role="user", content=text)


def bot(text: str) -> Turn:
    return Turn(role="assistant", content=text)


def names(question: str, history: list[Turn] | None = None) -> list[str]:
    query = build_query(question, history or [], ENTITIES, records=RECORDS)
    return [d.removesuffix(".md") for d in query.documents]


def test_records_are_read_from_key_value_lines_with_numeric_and_rating_keys() -> None:
    # GIVEN catalogue chunks of three kinds
    # THEN each is a record of its kind, prices and ratings are numeric, ratings are a scale
    assert len(RECORDS) == 9
    assert RECORDS.numeric_keys == frozenset({"价格", "评分", "门票", "人均消费"})
    assert RECORDS.scale_keys == frozenset({"评分"})
    assert RECORDS.kind_keys("酒店") == frozenset({"价格", "评分"})


def test_bounds_take_the_key_named_before_them_or_the_key_their_unit_fits() -> None:
    # WHEN a question states a price band, a rating floor and "free"
    stated = "评分4.5分以上、价格200-300元的经济型"
    found = [str(c) for c in RECORDS.constraints(stated, kind="酒店")]
    # THEN each bound is tied to its key and the value is a condition too
    assert found == ["4.5<=评分", "200<=价格<=300", "经济型"]
    assert [str(c) for c in RECORDS.constraints("免费的景点", kind="景点")] == ["门票=0"]
    assert [str(c) for c in RECORDS.constraints("under 50 yuan", kind="餐馆")] == ["人均消费<=50"]


def test_a_value_holding_a_price_word_is_not_a_price() -> None:
    # "免费市内电话" is a facility: it must not become "price = 0"
    found = RECORDS.constraints("有免费市内电话的酒店", kind="酒店")
    assert [str(c) for c in found] == ["免费市内电话"]


def test_a_request_by_properties_finds_the_record_that_meets_them_all() -> None:
    # GIVEN a visitor who names no hotel but states what it must be
    # WHEN they ask for a pick
    # THEN the only economy hotel rated 4.5+ within 200-300 comes first
    assert names("帮我推荐一个评分4.5分以上，价格200-300元的经济型酒店")[0] == "如意酒店（酒店）"
    # AND a specific dish outweighs a broad price band the record misses
    assert names("我想吃卤煮，推荐一家人均消费100-150元的餐馆")[0] in {
        "老北京面馆（餐馆）", "小吃城（餐馆）"}


def test_without_a_kind_word_the_kind_that_can_meet_the_conditions_is_used() -> None:
    # "地方" is no kind, but only attractions have a ticket price and a visiting time
    assert names("帮我找个门票20元以下、能玩2小时的地方")[0] == "天坛（景点）"


def test_a_question_about_the_thing_being_discussed_is_not_a_pick() -> None:
    # GIVEN a conversation about one hotel
    history = [user("如意酒店怎么样？"), bot("如意酒店是经济型酒店，评分4.6。")]
    # WHEN the visitor asks about "this hotel" or what is near it
    # THEN no record match is made: the conversation's subject answers
    assert names("这家酒店有无烟房吗？", history) == []
    assert names("它周边有什么景点？", history) == []
    # AND a question naming the hotel is searched as it is
    assert names("如意酒店的价格是多少？推荐一下", history) == []


def test_near_the_subject_counts_as_a_condition_of_a_pick() -> None:
    # GIVEN a conversation about the Summer Palace
    history = [user("颐和园门票多少钱？"), bot("颐和园门票30元。")]
    # WHEN the visitor asks for a cheap restaurant near it with a dish
    found = names("附近推荐一家有卤煮的餐馆", history)
    # THEN the restaurant next to it comes first
    assert found[0] == "小吃城（餐馆）"


def test_equal_matches_go_to_the_record_other_records_mention_most() -> None:
    # GIVEN two 4.7-rated attractions; the Forbidden City is listed by more neighbours
    # WHEN a visitor asks for any attraction rated 4.7+
    # THEN it comes first
    assert names("推荐一个评分4.7分以上的景点")[:2] == ["故宫（景点）", "颐和园（景点）"]


def test_with_no_exact_match_the_nearest_number_comes_first() -> None:
    # GIVEN no hotel rated 5
    # WHEN a visitor asks for one
    # THEN the best-rated hotel is offered before the others
    expected = ["金都大酒店（酒店）", "如意酒店（酒店）", "平安旅馆（酒店）"]
    assert names("推荐一个评分5分的酒店") == expected


def test_a_pronoun_question_about_the_subject_is_not_a_pick() -> None:
    # GIVEN a conversation about one hotel
    history = [user("如意酒店怎么样？"), bot("如意酒店是经济型酒店，评分4.6。")]
    # WHEN the visitor asks whether "它" has a facility (no kind word)
    # THEN no record match is made
    assert names("它有没有叫醒服务？", history) == []


def test_which_of_the_ones_just_listed_is_chosen_among_them() -> None:
    # GIVEN the assistant listed two restaurants
    history = [user("天坛附近有什么餐馆？"), bot("有老北京面馆和全鸭季。")]
    # WHEN the visitor asks which of these has a dish
    # THEN only those two are considered, the one with the dish first
    found = names("这两家餐馆哪个有炸酱面和烤鸭？", history)
    assert found == ["全鸭季（餐馆）", "老北京面馆（餐馆）"]


def test_a_duration_written_loosely_matches_the_catalogue_value() -> None:
    # GIVEN attractions whose visiting time is written "3小时 - 4小时"
    # WHEN a visitor writes it "3、4个小时"
    # THEN it is the same condition
    assert names("推荐一个能玩3、4个小时的景点")[0] == "故宫（景点）"


def test_terms_in_gives_names_and_catalogue_values_as_the_text_writes_them() -> None:
    # GIVEN the catalogue's index with its records, and a reply that writes a name with the
    # full-width brackets the index holds normalised
    index = dataclasses.replace(ENTITIES, records=RECORDS)
    text = "推荐您去全鸭季（餐馆），招牌是烤鸭，周边有故宫；全鸭季人均180。"
    # WHEN the words worth keeping are looked up
    terms = index.terms_in(text)
    # THEN the entity names and the record values come back spelt as in the text, once each,
    # in order of appearance (the name's qualifier in brackets is part of it)
    assert terms == ["全鸭季（餐馆）", "烤鸭", "故宫", "全鸭季"]
    assert all(t in text for t in terms)


def test_terms_in_without_records_gives_the_names_only() -> None:
    # GIVEN an index whose records are not built yet
    # WHEN a text names an entity and a dish
    terms = ENTITIES.terms_in("全鸭季的烤鸭")
    # THEN only the name is found
    assert terms == ["全鸭季"]


def test_the_kind_asked_for_is_the_object_of_the_request_not_a_kind_done_with() -> None:
    # GIVEN a visitor who has been to an attraction and now wants a hotel
    # WHEN the attraction's kind word comes first in the question
    found = names("去完景点我想找家经济型的酒店住下，要有叫醒服务")
    # THEN hotels are matched, not attractions
    assert found[0] == "如意酒店（酒店）"
    assert all(name.endswith("（酒店）") for name in found)
    assert names("找好酒店以后，帮我推荐一个门票20元以下的景点")[0] == "天坛（景点）"


def test_a_kind_word_as_the_object_makes_a_request_without_a_request_word() -> None:
    # GIVEN no 推荐/找/有没有 in the question, but "...的餐馆" with conditions
    # WHEN the visitor states what the restaurant must be
    # THEN it is a request by properties
    assert names("然后我要去一个有卤煮、人均消费40元以下的餐馆吃饭")[0] == "小吃城（餐馆）"
    assert names("请问有评分4.5分以上且是经济型的酒店吗？")[0] == "如意酒店（酒店）"
    # AND a kind word inside a field's name ("酒店设施") about the hotel discussed is none
    history = [user("推荐一家经济型酒店"), bot("推荐您去如意酒店。")]
    assert names("那这个酒店的酒店设施有叫醒服务吗？", history) == []
    # AND "other restaurants near it" asks about the subject's neighbours, not for a pick
    history = [user("老北京面馆有卤煮吗？"), bot("有的。")]
    assert names("我喜欢卤煮，它家周边还有别的餐馆吗？", history) == []


def test_a_span_written_with_units_on_both_ends_matches_the_catalogue_value() -> None:
    # GIVEN attractions whose visiting time is written "3小时 - 4小时"
    # WHEN a visitor writes "3小时到4小时" or "3个小时至4个小时"
    # THEN it is the same condition
    assert names("推荐一个能玩3小时到4小时的景点")[0] == "故宫（景点）"
    assert [str(c) for c in RECORDS.constraints("3个小时至4个小时", kind="景点")] == [
        "3小时-4小时"]
    # AND a value is never read inside a longer number ("0.3小时" is not "3小时")
    assert RECORDS.values_in("游玩时间0.3小时") == []


def test_a_bound_without_unit_or_key_goes_to_the_kinds_one_price_key() -> None:
    # GIVEN attractions, whose only numeric key other than the rating is the ticket
    # WHEN a visitor writes "票价是15-30的" (no unit, no key name the catalogue uses)
    found = [str(c) for c in RECORDS.constraints("票价是15-30的景点", kind="景点")]
    # THEN it bounds the ticket price
    assert found == ["15<=门票<=30"]
    # AND numbers small enough for a rating, times and phone numbers bound nothing
    assert RECORDS.constraints("2-3的景点", kind="景点") == []
    assert RECORDS.constraints("10:30-15:30开门的景点", kind="景点") == []
    # AND without a kind, the price key is not guessed
    assert RECORDS.constraints("票价是15-30的", kind=None) == []


def test_which_of_the_ones_listed_keeps_them_all_even_when_none_meets_the_condition() -> None:
    # GIVEN the assistant listed two restaurants
    history = [user("天坛附近有什么餐馆？"), bot("有老北京面馆和全鸭季。")]
    # WHEN the visitor asks which has a dish neither has
    # THEN both are still the answer candidates, not the whole catalogue
    found = names("这两家餐馆哪个有豆汁？", history)
    assert sorted(found) == ["全鸭季（餐馆）", "老北京面馆（餐馆）"]


def test_a_name_that_is_also_a_feature_of_the_kind_asked_is_no_subject() -> None:
    # GIVEN a bar that is a restaurant of its own, and hotels listing "酒吧" as a facility
    bar = ("酒吧.md", "酒吧（餐馆）", "推荐菜：鸡尾酒、薯条\n\n人均消费：90\n\n评分：4.0")
    chunks = [*CHUNKS, bar]
    chunks = [(d, h, b.replace("叫醒服务", "叫醒服务、酒吧")) for d, h, b in chunks]
    entities = EntityIndex.from_headings([(d, h) for d, h, _ in chunks])
    records = RecordIndex.from_chunks(chunks, entities.kinds)
    history = [user("推荐一家经济型酒店"), bot("推荐您去平安旅馆。")]
    # WHEN the visitor asks whether the hotel has a bar
    query = build_query("那酒店有酒吧么？", history, entities, records=records)
    # THEN the hotel being discussed is the subject, not the restaurant named 酒吧
    assert query.entities[:2] == ("平安旅馆(酒店)", "平安旅馆")
    # AND a name in a single-valued field (an address) is not a feature
    assert not records.is_feature("故宫", "酒店")


def test_equal_mentions_go_to_the_record_lists_name_first() -> None:
    # GIVEN two hotels equally rated, each listed by two attractions: one first, one last
    chunks = [
        ("a.md", "甲酒店（酒店）", "酒店类型：经济型\n\n价格：200\n\n评分：4.5"),
        ("b.md", "乙酒店（酒店）", "酒店类型：经济型\n\n价格：200\n\n评分：4.5"),
        ("f.md", "丙旅馆（酒店）", "酒店类型：豪华型\n\n价格：900\n\n评分：4.8"),
        ("c.md", "东园（景点）", "门票：10\n\n评分：4.0\n\n周边酒店：甲酒店、丙旅馆、乙酒店"),
        ("d.md", "西园（景点）", "门票：20\n\n评分：4.1\n\n周边酒店：甲酒店、乙酒店、丙旅馆"),
        ("e.md", "南园（景点）", "门票：30\n\n评分：4.2\n\n周边酒店：丙旅馆"),
    ]
    entities = EntityIndex.from_headings([(d, h) for d, h, _ in chunks])
    records = RecordIndex.from_chunks(chunks, entities.kinds)
    # WHEN a visitor asks for an economy hotel
    found = build_query("推荐一家经济型酒店", [], entities, records=records).documents
    # THEN the one the lists name first comes first (not the alphabetical first, 乙)
    assert found == ("a.md", "b.md")
