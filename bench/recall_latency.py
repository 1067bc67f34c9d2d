"""Recall latency with a large tenant: 100,000 long-term facts and 10,000 knowledge chunks.

Loads (once; COPY, then HNSW indexes built in bulk) a tenant with 100,000 facts spread over
10,000 customers and 10,000 knowledge-base chunks of synthetic Chinese/English support text,
then times `recall()` with all four sources (short-term in Redis, long-term and knowledge base
in PostgreSQL + pgvector, the sample CRM in process behind its HTTP contract) under the
default 200 ms deadline, for random customers and questions.

    .venv/bin/python -m bench.recall_latency [--dsn DSN] [--redis-url URL] [--n 500] [--reload]

Without --dsn it uses the embedded PostgreSQL (.kefu/bench-pg, database kefu_bench).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from kefu_memory import (
    CrmClient,
    KnowledgeBase,
    LongTermMemory,
    OfflineEmbedder,
    ShortTermMemory,
    Turn,
    crm_source,
    knowledge_source,
    long_term_source,
    migrate,
    recall,
    short_term_source,
)
from kefu_memory._chunking import Chunk
from kefu_memory._migrations import hnsw_index_statements
from kefu_memory.embedders import to_pgvector
from kefu_memory.knowledge import _chunk_terms
from kefu_memory.sample_crm import DEMO_DATA, create_app

TENANT = "bench-latency"
FACTS = 100_000
CUSTOMERS = 10_000
CHUNKS = 10_000
CHUNKS_PER_DOC = 10

CITIES = ["北京市朝阳区", "上海市浦东新区", "广州市天河区", "深圳市南山区", "杭州市西湖区",
          "成都市武侯区", "武汉市洪山区", "南京市鼓楼区"]
ROADS = ["建国路", "世纪大道", "天河路", "科技园南路", "文三路", "人民南路", "珞喻路", "中山路"]
PRODUCTS = ["机械键盘", "无线鼠标", "蓝牙耳机", "显示器", "笔记本支架", "USB-C 扩展坞", "移动电源",
            "智能手表", "电动牙刷", "空气净化器"]
TOPICS = ["退货", "退款", "换货", "发票", "物流", "配送", "保修", "会员积分", "优惠券",
          "支付", "账户安全", "售后维修", "价格保护", "预售", "定制服务", "企业采购",
          "国际运输", "以旧换新"]
EN_TOPICS = ["returns", "refunds", "exchanges", "invoices", "shipping", "delivery", "warranty",
             "loyalty points", "coupons", "payment", "account security", "repairs"]
QUESTIONS = ["我的退款什么时候到账？", "订单到哪了，怎么还没发货", "怎么开发票", "保修期是多久",
             "可以换货吗", "Where is my order?", "How do I get a refund?", "优惠券怎么用",
             "你们答应给我回电话的", "收货地址能改吗", "会员积分怎么兑换", "键盘坏了怎么维修"]


def fact_rows(rng: random.Random) -> list[tuple[str, str, str, str, dict[str, object]]]:
    """(customer, kind, key, value, attributes) for FACTS facts over CUSTOMERS customers."""
    rows = []
    for i in range(FACTS):
        customer = f"cust-{i % CUSTOMERS:05d}"
        n = i // CUSTOMERS
        order = f"SO{2026_0000_00 + rng.randrange(10**6):012d}"
        product = rng.choice(PRODUCTS)
        kind = ["order", "address", "phone", "preference", "complaint", "promise"][n % 6]
        if kind == "order":
            rows.append((customer, kind, f"order:{order}-{n}", f"订单 {order} 购买了{product}",
                         {"order_id": order}))
        elif kind == "address":
            rows.append((customer, kind, f"address:{n}", f"{rng.choice(CITIES)}"
                         f"{rng.choice(ROADS)}{rng.randrange(1, 999)}号", {}))
        elif kind == "phone":
            rows.append((customer, kind, f"phone:{n}", f"1{rng.randrange(30, 99)}"
                         f"{rng.randrange(10**8):08d}", {}))
        elif kind == "preference":
            choices = ["以后请用顺丰发货", "不要打电话，发短信就行", "I prefer email",
                       "周末不方便收货"]
            rows.append((customer, kind, f"preference:{n}", rng.choice(choices), {}))
        elif kind == "complaint":
            rows.append((customer, kind, f"complaint:{n}", f"{product}收到时已经破损，很不满意",
                         {"order_id": order}))
        else:
            rows.append((customer, kind, f"promise:refund:{order}",
                         f"我们会为您的订单 {order} 办理退款 {rng.randrange(10, 500)} 元",
                         {"order_id": order, "promise": "refund"}))
    return rows


def chunk_texts(rng: random.Random) -> list[tuple[str, Chunk]]:
    out = []
    for d in range(CHUNKS // CHUNKS_PER_DOC):
        topic = TOPICS[d % len(TOPICS)]
        en = EN_TOPICS[d % len(EN_TOPICS)]
        for c in range(CHUNKS_PER_DOC):
            product = rng.choice(PRODUCTS)
            days = rng.randrange(1, 30)
            text = (
                f"{topic}说明（第{c + 1}节）：购买{product}后，如需办理{topic}，"
                f"请在签收后 {days} 天内"
                f"通过“我的订单”提交申请。审核通过后我们会在 {rng.randrange(1, 7)} 个工作日内处理，"
                f"处理结果会以短信通知。特殊商品（定制、{rng.choice(PRODUCTS)}拆封后）不适用。"
                f" For {en} of {product}, apply within {days} days of delivery; we reply within"
                f" {rng.randrange(1, 5)} business days."
            )
            out.append((f"docs/{topic}-{d:04d}.md", Chunk(heading=f"{topic} > 第{c + 1}节",
                                                          text=text)))
    return out


async def load(dsn: str, embedder: OfflineEmbedder) -> None:
    rng = random.Random(42)
    t0 = time.perf_counter()
    facts = fact_rows(rng)
    chunks = chunk_texts(rng)
    fact_vectors = await asyncio.to_thread(
        embedder.embed_sync, [f"{kind}: {value}" for _, kind, _, value, _ in facts]
    )
    chunk_vectors = await asyncio.to_thread(
        embedder.embed_sync, [c.embedding_text() for _, c in chunks]
    )
    terms = [_chunk_terms(c) for _, c in chunks]
    t_embed = time.perf_counter() - t0
    import json

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for table in ("mem_facts", "kb_chunks"):
            await conn.execute(f"DROP INDEX IF EXISTS {table}_hnsw_{embedder.dim}")
        await conn.execute("DELETE FROM mem_facts WHERE tenant_id = %s", (TENANT,))
        await conn.execute("DELETE FROM kb_documents WHERE tenant_id = %s", (TENANT,))
        await conn.execute("DELETE FROM kb_tenants WHERE tenant_id = %s", (TENANT,))
        async with conn.cursor().copy(
            "COPY mem_facts (tenant_id, customer_id, kind, key, value, value_norm, attributes,"
            " extractor, source_conversation_id, source_seq, embedder, dim, embedding)"
            " FROM STDIN"
        ) as copy:
            for (customer, kind, key, value, attrs), vec in zip(facts, fact_vectors, strict=True):
                await copy.write_row((TENANT, customer, kind, key, value, value, json.dumps(
                    attrs, ensure_ascii=False), "bench", f"conv-{customer}", 1, embedder.name,
                    embedder.dim, to_pgvector(vec)))
        doc_ids: dict[str, int] = {}
        for name in dict.fromkeys(n for n, _ in chunks):
            cur = await conn.execute(
                "INSERT INTO kb_documents (tenant_id, name, content_type, content_hash,"
                " chunk_count) VALUES (%s, %s, 'text/markdown', 'bench', %s) RETURNING id",
                (TENANT, name, CHUNKS_PER_DOC),
            )
            row = await cur.fetchone()
            assert row is not None
            doc_ids[name] = int(row[0])
        cur = await conn.execute(
            "SELECT nextval('kb_chunks_id_seq') FROM generate_series(1, %s)", (len(chunks),)
        )
        ids = [int(r[0]) for r in await cur.fetchall()]
        lengths = [sum(t.values()) for t in terms]
        async with conn.cursor().copy(
            "COPY kb_chunks (id, document_id, tenant_id, ord, heading, content, term_count,"
            " embedder, dim, embedding) FROM STDIN"
        ) as copy:
            for i, ((name, chunk), vec) in enumerate(zip(chunks, chunk_vectors, strict=True)):
                await copy.write_row((ids[i], doc_ids[name], TENANT, i % CHUNKS_PER_DOC,
                                      chunk.heading, chunk.text, lengths[i], embedder.name,
                                      embedder.dim, to_pgvector(vec)))
        async with conn.cursor().copy(
            "COPY kb_postings (tenant_id, term, chunk_id, tf, doc_len) FROM STDIN"
        ) as copy:
            for i, chunk_terms in enumerate(terms):
                for term, tf in chunk_terms.items():
                    await copy.write_row((TENANT, term, ids[i], tf, lengths[i]))
        await conn.execute("DELETE FROM kb_terms WHERE tenant_id = %s", (TENANT,))
        await conn.execute(
            "INSERT INTO kb_terms (tenant_id, term, df) SELECT tenant_id, term, count(*)"
            " FROM kb_postings WHERE tenant_id = %s GROUP BY tenant_id, term",
            (TENANT,),
        )
        await conn.execute(
            "INSERT INTO kb_tenants (tenant_id, version, chunk_count, term_total)"
            " VALUES (%s, 1, %s, %s)",
            (TENANT, len(chunks), sum(lengths)),
        )
        t_copy = time.perf_counter() - t0 - t_embed
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for _, statement in hnsw_index_statements(embedder.dim):
            await conn.execute(statement)
        await conn.execute(
            "VACUUM ANALYZE mem_facts, kb_chunks, kb_postings, kb_documents, kb_terms"
        )
    print(f"  loaded {FACTS} facts and {CHUNKS} chunks: embed {t_embed:.1f} s, COPY {t_copy:.1f} s,"
          f" HNSW + VACUUM ANALYZE {time.perf_counter() - t0 - t_embed - t_copy:.1f} s")


async def loaded(dsn: str) -> bool:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM mem_facts WHERE tenant_id = %s),"
            " (SELECT count(*) FROM kb_chunks WHERE tenant_id = %s)",
            (TENANT, TENANT),
        )
        row = await cur.fetchone()
    return row == (FACTS, CHUNKS)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace) -> int:
    dsn = args.dsn
    if not dsn:
        from kefu_core.infra.embedded import EmbeddedPostgres

        dsn = EmbeddedPostgres(data_dir=Path(".kefu/bench-pg"), database="kefu_bench").start()
    redis_url = args.redis_url or os.environ.get("REDIS_URL")
    embedded_redis = None
    if not redis_url:
        from kefu_core.infra.embedded import EmbeddedRedis, redis_reachable

        if redis_reachable():
            redis_url = "redis://127.0.0.1:6379/0"
        else:
            embedded_redis = EmbeddedRedis()
            redis_url = embedded_redis.start()
    embedder = OfflineEmbedder()
    await migrate(dsn, dims=(embedder.dim,))
    print("Recall latency: 4 sources in parallel, one 200 ms deadline")
    if args.reload or not await loaded(dsn):
        await load(dsn, embedder)
    else:
        print(f"  reusing the loaded tenant ({FACTS} facts, {CHUNKS} chunks; --reload to redo)")

    rng = random.Random(7)
    redis = aioredis.Redis.from_url(redis_url)
    prefix = f"kefu-bench:{os.getpid()}:"
    stm = ShortTermMemory(redis, prefix=prefix, window=10)
    for c in range(20):
        await stm.extend(f"conv-{c}", [
            Turn(role="user" if t % 2 == 0 else "assistant", content=rng.choice(QUESTIONS), seq=t)
            for t in range(20)
        ])
    crm_data = {f"cust-{i:05d}": DEMO_DATA["c-1001"] for i in range(CUSTOMERS)}
    crm = CrmClient("http://crm", token="demo-token", cache_ttl_s=30,
                    transport=httpx.ASGITransport(app=create_app(data=crm_data)))
    load_before = os.getloadavg()[0]
    totals: list[float] = []
    per_source: dict[str, list[float]] = {}
    missing: dict[str, int] = {}
    async with AsyncConnectionPool(dsn, min_size=8, max_size=8, open=False) as pool:
        await pool.open(wait=True)
        ltm = LongTermMemory(pool, embedder)
        kb = KnowledgeBase(pool, embedder)
        for i in range(args.warmup + args.n):
            customer = f"cust-{rng.randrange(CUSTOMERS):05d}"
            query = rng.choice(QUESTIONS)
            result = await recall(
                sources={
                    "crm": crm_source(crm, customer),
                    "long_term": long_term_source(ltm, tenant_id=TENANT, customer_id=customer,
                                                  query=query),
                    "short_term": short_term_source(stm, f"conv-{i % 20}"),
                    "knowledge": knowledge_source(kb, tenant_id=TENANT, query=query),
                },
                deadline_s=0.2,
            )
            if i < args.warmup:
                continue
            totals.append(result.elapsed_ms)
            for section in result.sections:
                per_source.setdefault(section.source, []).append(section.elapsed_ms)
            for name in result.missing:
                missing[name] = missing.get(name, 0) + 1
    await crm.aclose()
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    if embedded_redis:
        embedded_redis.stop()

    print(f"  recalls timed: {len(totals)} (after {args.warmup} warm-up), random customer of"
          f" {CUSTOMERS} and question of {len(QUESTIONS)}")
    print(f"  recall total   p50 {statistics.median(totals):6.2f} ms   p95"
          f" {percentile(totals, 0.95):6.2f} ms   p99 {percentile(totals, 0.99):6.2f} ms"
          f"   max {max(totals):6.2f} ms")
    for name, values in per_source.items():
        print(f"  {name:14} p50 {statistics.median(values):6.2f} ms   p99"
              f" {percentile(values, 0.99):6.2f} ms   missed {missing.get(name, 0)}")
    print(f"  machine: {os.cpu_count()} cores, 1-minute load average {load_before:.2f} before"
          f" and {os.getloadavg()[0]:.2f} after the timed recalls")
    goal = percentile(totals, 0.99) < 30
    print(f"  goal p99 < 30 ms: {'met' if goal else 'NOT met'}")
    command = ".venv/bin/python -m bench.recall_latency"
    if args.dsn:
        command += " --dsn <DSN>"
    if args.n != 500:
        command += f" --n {args.n}"
    print(f"  reproduce: {command}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recall_latency")
    parser.add_argument("--dsn", help="PostgreSQL with pgvector (default: embedded, kefu_bench)")
    parser.add_argument("--redis-url", help="Redis (default: REDIS_URL, local 6379, embedded)")
    parser.add_argument("--n", type=int, default=500, help="timed recalls")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--reload", action="store_true", help="reload the data even if present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # late sources are counted, not logged
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
