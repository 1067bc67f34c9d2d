"""The knowledge-search query built from the conversation (rules and condenser fallback)."""

from __future__ import annotations

import asyncio

import pytest

from kefu_memory import EntityIndex, SearchQuery, Turn, build_query, condense_query

STORES = EntityIndex.from_titles(["静安店", "浦东店", "徐汇店", "Air Mini speaker",
                                  "Pro X headphones"])
CROSSWOZ = EntityIndex.from_titles([
    "故宫（景点）", "天坛（景点）", "颐和园（景点）", "北京饭店（酒店）", "北京首都宾馆（酒店）",
    "北京贵都大酒店（酒店）", "全聚德(前门店)（餐馆）", "四季民福（餐馆）", "东来顺（餐馆）",
])


def user(text: str) -> Turn:
    return Turn(role="user", content=text)


def bot(text: str) -> Turn:
    return Turn(role="assistant", content=text)


def test_entity_index_finds_names_longest_first_and_latin_names_as_whole_words() -> None:
    # GIVEN titles, one a prefix of another, and a Latin one
    index = EntityIndex.from_titles(["北京饭店", "北京饭店(王府井店)", "TV", "Air Mini"])
    # WHEN text mentions them
    # THEN the longest name wins, Latin names match whole words only, case-insensitively
    assert index.find("去北京饭店(王府井店)还是北京饭店？") == ["北京饭店(王府井店)", "北京饭店"]
    assert index.find("my TVs and the air mini") == ["air mini"]


def test_a_bracketed_qualifier_gives_the_bare_name_and_a_kind() -> None:
    # GIVEN CrossWOZ-like titles "name（kind）"
    # THEN the bare name is found in text, and the qualifier shared by 3+ titles is a kind
    assert CROSSWOZ.find("故宫门票多少钱") == ["故宫"]
    assert CROSSWOZ.kinds == frozenset({"景点", "酒店", "餐馆"})
    assert CROSSWOZ.kinds_of("故宫") == frozenset({"景点"})


def test_a_heading_shared_by_many_documents_is_not_an_entity() -> None:
    # GIVEN the heading "概述" in seven documents and "退货政策" in one
    pairs = [(f"doc{i}.md", "概述") for i in range(7)] + [("returns.md", "退货政策 > 退款时效")]
    index = EntityIndex.from_headings(pairs)
    # THEN only the specific headings are entities
    assert index.find("概述里的退货政策和退款时效") == ["退货政策", "退款时效"]


def test_without_history_the_query_is_the_question() -> None:
    assert build_query("它几点开门？", [], STORES) == SearchQuery(text="它几点开门？")


def test_a_question_that_names_the_entity_is_searched_as_it_is() -> None:
    query = build_query("浦东店几点开门？", [user("静安店在哪？"), bot("南京西路1266号。")], STORES)
    assert query.text == "浦东店几点开门？"
    assert query.entities == ("浦东店",)


def test_a_follow_up_carries_the_entity_of_the_previous_turns() -> None:
    # GIVEN a conversation about the Xuhui store
    history = [user("徐汇店在哪里？"), bot("徐汇店在漕溪北路88号。")]
    # WHEN the visitor asks a follow-up without naming it
    query = build_query("它几点开门？", history, STORES)
    # THEN the store is carried over into the query and preferred
    assert query.text == "它几点开门？ 徐汇店"
    assert query.entities[0] == "徐汇店"
    assert query.source == "conversation"


def test_an_english_follow_up_carries_the_product() -> None:
    history = [user("Can I return the Air Mini speaker?"),
               bot("Yes, within 14 days of delivery.")]
    query = build_query("and the refund?", history, STORES)
    assert query.entities[0] == "air mini speaker"
    assert "air mini speaker" in query.text


def test_the_assistants_recommendation_becomes_the_subject() -> None:
    # GIVEN the visitor asked for a pick and the assistant named one place
    history = [user("帮我推荐一个景点"), bot("推荐您去颐和园。")]
    # WHEN the visitor asks about "it"
    query = build_query("它的门票多少钱？", history, CROSSWOZ)
    # THEN the recommended place is the subject (its 景点 title first, then any same name)
    assert query.entities[:2] == ("颐和园(景点)", "颐和园")


def test_names_listed_as_what_is_nearby_do_not_replace_the_subject() -> None:
    # GIVEN the assistant listed the hotels near the place being discussed
    history = [user("帮我推荐一个景点"), bot("推荐您去故宫。"),
               user("这个景点周边有什么酒店？"), bot("周边酒店有北京饭店。")]
    # WHEN the visitor asks a follow-up
    query = build_query("那它的电话是多少？", history, CROSSWOZ)
    # THEN the place stays the subject; the listed hotel is only a second choice
    assert query.entities[:3] == ("故宫(景点)", "故宫", "北京饭店")


def test_a_kind_in_the_question_picks_the_latest_entity_of_that_kind() -> None:
    # GIVEN a place, then a restaurant the assistant recommended near it
    history = [user("我想去天坛"), bot("好的，天坛很好玩。"),
               user("在天坛附近帮我找一家餐馆"), bot("推荐您去四季民福。")]
    # WHEN the visitor asks about "this place" (景点) rather than the restaurant
    query = build_query("这个景点的地址是？", history, CROSSWOZ)
    # THEN the place of that kind is the subject
    assert query.entities[:2] == ("天坛(景点)", "天坛")
    assert build_query("电话是多少？", history, CROSSWOZ).entities[:2] == ("四季民福(餐馆)",
                                                                         "四季民福")


def test_with_no_entity_anywhere_the_previous_question_gives_the_topic() -> None:
    history = [user("How do returns work for headphones?"), bot("Within 30 days.")]
    query = build_query("and the refund?", history, EntityIndex())
    assert query.text == "and the refund? How do returns work for headphones?"
    assert query.entities == ()


async def test_a_condensed_question_is_used_with_the_original_one() -> None:
    fallback = build_query("它几点开门？", [user("徐汇店在哪里？")], STORES)

    async def complete(prompt: str) -> str:
        assert "徐汇店在哪里？" in prompt and "它几点开门？" in prompt
        return "徐汇店的营业时间"

    query = await condense_query("它几点开门？", [user("徐汇店在哪里？")], complete=complete,
                                 fallback=fallback, entities=STORES, timeout_s=5)
    assert query.text == "徐汇店的营业时间 它几点开门？"
    assert query.entities[0] == "徐汇店"
    assert query.source == "condensed"


@pytest.mark.parametrize("outcome", ["raises", "empty", "too long", "never answers"])
async def test_the_rule_based_query_answers_when_the_condenser_cannot(outcome: str) -> None:
    fallback = build_query("它几点开门？", [user("徐汇店在哪里？")], STORES)

    async def complete(prompt: str) -> str:
        if outcome == "raises":
            raise RuntimeError("engine down")
        if outcome == "never answers":
            await asyncio.Event().wait()
        return "" if outcome == "empty" else "很长" * 400

    query = await condense_query("它几点开门？", [user("徐汇店在哪里？")], complete=complete,
                                 fallback=fallback, entities=STORES, timeout_s=0.05)
    assert query is fallback


def test_a_section_repeated_under_several_titles_is_an_aspect_not_an_entity() -> None:
    # GIVEN "Refund" as a section of two products
    index = EntityIndex.from_headings([
        ("p.md", "Pro X headphones > Refund"), ("p.md", "Air Mini speaker > Refund"),
        ("p.md", "Air Mini speaker > Pairing"),
    ])
    # THEN the products and the unique section are entities, the repeated section is not
    assert index.find("refund of the air mini speaker pairing") == ["air mini speaker",
                                                                     "pairing"]
    history = [user("Can I return the speaker?"), bot("Yes, the Air Mini speaker: 14 days.")]
    assert build_query("and the refund?", history, index).entities[0] == "air mini speaker"


def test_same_named_entries_of_several_kinds_are_told_apart_by_the_kind_asked() -> None:
    # GIVEN a place and a metro entry that share a name
    index = EntityIndex.from_titles([
        "故宫（景点）", "天坛（景点）", "颐和园（景点）",
        "故宫（地铁）", "天坛（地铁）", "西单（地铁）",
        "北京饭店（酒店）", "北京首都宾馆（酒店）", "如家酒店（酒店）", "如家酒店（地铁）",
    ])
    # WHEN a question asks about it as a place, or names it with a kind word inside the name
    # THEN the title of that kind comes first
    assert build_query("这个景点的门票多少？", [user("故宫怎么样？"), bot("很好。")],
                       index).entities[:2] == ("故宫(景点)", "故宫")
    assert build_query("如家酒店有停车位吗？", [], index).entities == ("如家酒店(酒店)", "如家酒店")


def test_asking_what_is_near_keeps_the_subject_rather_than_the_last_of_that_kind() -> None:
    # GIVEN a restaurant talked about earlier, then a hotel the assistant recommended
    history = [user("四季民福怎么样？"), bot("四季民福的烤鸭很好。"),
               user("帮我推荐一个酒店"), bot("推荐您去北京饭店。")]
    # WHEN the visitor asks which restaurants are near (the kind of the neighbours)
    query = build_query("附近有餐馆么？", history, CROSSWOZ)
    # THEN the hotel being discussed stays the subject (its record lists its neighbours)
    assert query.entities[:2] == ("北京饭店(酒店)", "北京饭店")
    # AND a kind word pointing at one still picks the latest of that kind
    assert build_query("这家餐馆周边有什么景点？", history, CROSSWOZ).entities[:2] == (
        "四季民福(餐馆)", "四季民福")


def test_names_in_a_reply_about_the_subject_do_not_replace_it() -> None:
    # GIVEN the visitor asked for the address of "this attraction"
    history = [user("帮我推荐一个景点"), bot("推荐您去颐和园。"),
               user("这个景点的地址是？"), bot("地址在天坛东边100米。")]
    # WHEN they ask a follow-up
    query = build_query("电话是多少？", history, CROSSWOZ)
    # THEN the attraction stays the subject: the places the address names are attributes
    assert query.entities[:2] == ("颐和园(景点)", "颐和园")


def test_of_several_names_in_a_recommendation_the_one_of_the_kind_asked_is_the_subject() -> None:
    # GIVEN the visitor asked for a restaurant and the reply also names a place near it
    history = [user("故宫门票多少钱？"), bot("60元。"),
               user("帮我找一家评分4.5分以上的餐馆"), bot("推荐您去四季民福，旁边还有天坛。")]
    # WHEN they ask a follow-up
    query = build_query("电话是多少？", history, CROSSWOZ)
    # THEN the recommended restaurant is the subject
    assert query.entities[:2] == ("四季民福(餐馆)", "四季民福")
