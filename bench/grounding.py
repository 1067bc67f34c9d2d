"""The grounding check (kefu_core.answers.grounding): precision and recall of "unsupported".

Two labelled populations, reported apart:

- ``demo``: ``bench/data/grounding_demo.jsonl``, replies about ``knowledge/demo/`` written by
  hand by the author of the check (Chinese and English; paraphrases, wrong numbers, flipped
  policies, invented services), each sentence labelled supported (``s``) or unsupported
  (``u``). The sources are the sections of the named documents, as the chunker cuts them.
  Small, and written knowing the check's rules: an optimistic estimate. Scored per sentence.
- ``crosswoz``: real system turns of CrossWOZ (``val.json.zip``, written by paid annotators,
  not by this project) that answer a visitor's request from one database entity; the source is
  that entity rendered as the knowledge base holds it (bench.retrieval_quality.render) plus the
  visitor's question. A turn is kept only when every value it informs is in the entity
  (labelled grounded); each kept turn also yields a perturbed copy in which one informed value
  is replaced by the same attribute of another entity (labelled ungrounded; seeded). Scored
  per reply: a reply is predicted ungrounded when any sentence is unsupported. The errors are
  synthetic (one swapped value), the phrasing real. The first half of the dialogues
  (``tune``) was used to adjust the check's rules; the second (``heldout``) was not looked at.

Positive class: "unsupported". Precision = flagged and truly unsupported / flagged; recall =
flagged and truly unsupported / truly unsupported.

    .venv/bin/python -m bench.grounding [--dialogues FILE] [--database DIR] [--limit N]
        [--show-errors N]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.retrieval_quality import DATA, load_dialogues, render
from kefu_core.answers.grounding import check_reply

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "bench" / "data" / "grounding_demo.jsonl"
KNOWLEDGE = ROOT / "knowledge" / "demo"
DOMAINS = ("酒店", "餐馆", "景点")
SEED = 16


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, *, truth: bool, flagged: bool) -> None:
        if truth and flagged:
            self.tp += 1
        elif flagged:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    def line(self, label: str) -> str:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")
        n = self.tp + self.fp + self.fn + self.tn
        return (f"  {label:<28} n={n:<5} precision {precision:.2f}  recall {recall:.2f}"
                f"  (tp {self.tp}, fp {self.fp}, fn {self.fn}, tn {self.tn})")


def demo_sections() -> dict[str, list[str]]:
    """The demo documents as passages: Markdown sections, FAQ rows."""
    sections: dict[str, list[str]] = {}
    for path in sorted(KNOWLEDGE.iterdir()):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".csv":
            sections[path.name] = [line for line in text.splitlines()[1:] if line.strip()]
        elif path.suffix == ".md":
            sections[path.name] = [p.strip() for p in re.split(r"\n(?=## )", text) if p.strip()]
    return sections


def run_demo(show: int) -> Tally:
    sections = demo_sections()
    tally, shown = Tally(), 0
    for line in DEMO.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        sources = [s for doc in item["docs"] for s in sections[doc]]
        reply = "".join(sentence for sentence, _ in item["reply"])
        result = check_reply(reply, sources)
        flagged = {s.text: s.reason for s in result.unsupported}
        for sentence, label in item["reply"]:
            hit = sentence.strip() in flagged
            tally.add(truth=label == "u", flagged=hit)
            if hit != (label == "u") and shown < show:
                shown += 1
                print(f"    demo {'FP' if hit else 'FN'} {flagged.get(sentence.strip())}: "
                      f"{sentence}")
    return tally


@dataclass
class Case:
    reply: str
    sources: list[str]
    ungrounded: bool
    slot: str = ""
    part: str = "tune"


def _values(attrs: dict[str, Any], slot: str) -> list[str]:
    value = attrs.get(slot)
    if isinstance(value, list):
        return [str(v) for v in value]
    return [] if value in (None, "") else [str(value)]


def crosswoz_cases(dialogues: list[dict[str, Any]], database: Path, limit: int
                   ) -> tuple[list[Case], int]:
    entities: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in DOMAINS}
    for file in sorted(database.glob("*.json")):
        for name, attrs in json.loads(file.read_text(encoding="utf-8")):
            if attrs.get("领域") in entities:
                entities[attrs["领域"]][name] = attrs
    rng = random.Random(SEED)
    cases: list[Case] = []
    skipped = 0
    for number, dialogue in enumerate(dialogues):
        part = "tune" if number < len(dialogues) // 2 else "heldout"
        messages = dialogue["messages"]
        for i in range(1, len(messages)):
            turn, asked = messages[i], messages[i - 1]
            if turn["role"] != "sys" or asked["role"] != "usr":
                continue
            informs = [a for a in turn["dialog_act"] if a[0] == "Inform" and a[1] in DOMAINS
                       and a[2] != "名称" and a[3]]
            states = turn.get("sys_state", {})
            domains = {a[1] for a in informs}
            if not informs or len(domains) != 1:
                continue
            domain = domains.pop()
            chosen = states.get(domain, {}).get("selectedResults") or []
            attrs = entities[domain].get(chosen[0]) if len(chosen) == 1 else None
            if attrs is None or not all(str(a[3]) in _values(attrs, a[2])
                                        and str(a[3]) in turn["content"] for a in informs):
                skipped += 1
                continue
            entity = render(domain, chosen[0], attrs)
            sources = [entity, asked["content"]]
            cases.append(Case(reply=turn["content"], sources=sources, ungrounded=False,
                              part=part))
            _, _, slot, value = rng.choice(informs)
            others = sorted({v for other in entities[domain].values()
                             for v in _values(other, slot) if v not in entity})
            if others:
                wrong = rng.choice(others)
                cases.append(Case(reply=turn["content"].replace(str(value), wrong, 1),
                                  sources=sources, ungrounded=True, slot=slot, part=part))
            if len(cases) >= limit:
                break
    return cases, skipped


def run_crosswoz(cases: list[Case], show: int) -> tuple[Tally, dict[str, Tally], float]:
    """Score ``cases``; errors are shown from the tuning part only."""
    tally: Tally = Tally()
    by_slot: dict[str, Tally] = {}
    shown = 0
    started = time.perf_counter()
    for case in cases:
        result = check_reply(case.reply, case.sources)
        flagged = not result.grounded
        tally.add(truth=case.ungrounded, flagged=flagged)
        if case.ungrounded:
            by_slot.setdefault(case.slot, Tally()).add(truth=True, flagged=flagged)
        if flagged != case.ungrounded and shown < show and case.part == "tune":
            shown += 1
            why = [(s.text, s.reason) for s in result.unsupported]
            print(f"    crosswoz {'FP' if flagged else 'FN'} {case.slot}: {case.reply} {why}")
    per_reply_ms = (time.perf_counter() - started) * 1000 / max(len(cases), 1)
    return tally, by_slot, per_reply_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", default=str(DATA / "val.json.zip"))
    parser.add_argument("--database", default=str(DATA / "database"))
    parser.add_argument("--limit", type=int, default=100_000, help="CrossWOZ cases at most")
    parser.add_argument("--show-errors", type=int, default=0)
    args = parser.parse_args(argv)
    print("grounding check: precision / recall of 'unsupported'")
    demo = run_demo(args.show_errors)
    print(demo.line("demo KB, per sentence"))
    if not Path(args.database).is_dir() or not Path(args.dialogues).exists():
        print(f"CrossWOZ data not found (dialogues {args.dialogues}, database {args.database})")
        return 1
    cases, skipped = crosswoz_cases(load_dialogues(Path(args.dialogues)),
                                    Path(args.database), args.limit)
    for part in ("tune", "heldout"):
        chosen = [c for c in cases if c.part == part]
        tally, by_slot, per_reply_ms = run_crosswoz(chosen, args.show_errors)
        print(tally.line(f"CrossWOZ {part}, per reply"))
        grounded = sum(not c.ungrounded for c in chosen)
        print(f"    {grounded} real grounded turns, {len(chosen) - grounded} perturbed copies;"
              f" {per_reply_ms:.2f} ms per reply")
        counts = Counter({slot: t.tp + t.fn for slot, t in by_slot.items()})
        for slot, _ in counts.most_common(8):
            print("  " + by_slot[slot].line(f"recall, swapped {slot}"))
    print(f"  {skipped} turns skipped (a value not in the selected entity)")
    print(f"command: .venv/bin/python -m bench.grounding --dialogues {args.dialogues}"
          f" --database {args.database} --limit {args.limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
