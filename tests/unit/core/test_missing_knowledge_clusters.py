"""Clustering of the missing-knowledge queue (kefu_core.answers.missing_knowledge): Chinese
questions asked in different words fall together, unrelated ones apart, ranked by how many
conversations asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kefu_core.answers.missing_knowledge import cluster_items
from kefu_core.product.learning_queue import QueueItem

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _item(question: str, conversation: str, minutes_ago: int = 0,
          kind: str = "refused") -> QueueItem:
    return QueueItem.model_validate({
        "kind": kind, "conversation_id": conversation, "seq": 2, "question": question,
        "reply": "", "detail": "", "at": NOW - timedelta(minutes=minutes_ago)})


def test_paraphrases_cluster_and_the_biggest_cluster_comes_first() -> None:
    # GIVEN three conversations asking about instalments in different words, two about
    # invoices, one about a lost parcel (newest first)
    items = [_item("你们支持花呗分期吗？", "a", 1), _item("发票怎么开", "b", 2),
             _item("可以用花呗分期吗", "c", 3, "down"), _item("能开发票吗", "d", 4),
             _item("我的快递丢了怎么办", "e", 5, "handoff"),
             _item("支持花呗分期付款吗？", "f", 6, "unsupported")]
    # WHEN they are clustered
    clusters = cluster_items(items)
    # THEN instalments, invoices and the parcel are three clusters, in that order
    assert [c.conversations for c in clusters] == [3, 2, 1]
    assert clusters[0].kinds == {"refused": 1, "down": 1, "unsupported": 1}
    assert {e.conversation_id for e in clusters[1].examples} == {"b", "d"}
    assert clusters[2].question == "我的快递丢了怎么办"


def test_the_same_conversation_asking_twice_counts_once() -> None:
    # GIVEN one conversation asking the same thing twice, another once
    items = [_item("怎么退货", "a", 1), _item("怎么退货？", "a", 2),
             _item("退货流程是什么", "b", 3)]
    # WHEN clustered THEN one cluster of two conversations, worded as most often asked
    (cluster,) = cluster_items(items)
    assert cluster.conversations == 2 and cluster.question in ("怎么退货", "怎么退货？")
