#!/usr/bin/env python3
"""Exact answers over tables (issue 23 §3), for docs/benchmarks.md: aggregate questions
(counts, sums, averages, maxima, filters, a lookup) over two spreadsheets, asked of a bot
with the built-in `table_query` tool and of the same bot without it (retrieval only).

The tables: `tests/fixtures/docs/zh-sales.xlsx` (a merged title, six sales rows, formula
cells without values, a totals row) and a generated 10,000-row order table (seeded, so
every run asks about the same rows), written as CSV. The expected answers are computed
here from the same data.

An answer is exact when a number in it equals the expected one (integers exactly; other
numbers within 0.01 or 0.1 %, so 68.33 counts for 68.333…; the answer's first echo of
each number the question holds does not count) or, for a name, when it holds the name. Each question is asked once per bot, temperature 0, through the debug chat.

Usage: .venv/bin/python scripts/bench_tables.py [--models a,b] [--threads 2] [--json out.json]
       [--only table|plain]
(builds nothing: run `cargo build --release` first; CARGO_TARGET_DIR is read as cargo
reads it).
"""
import argparse
import csv
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zhiku_server  # noqa: E402  (starting the server, as the other benchmarks do)
from bench_chat import TOKEN, call, upload  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
SALES = ROOT / "tests/fixtures/docs/zh-sales.xlsx"
PERSONA = "你是销售数据助手，根据资料准确回答，给出具体数字。"

# zh-sales.xlsx, sheet 销售明细: (日期, 城市, 产品, 数量, 单价).
SALES_ROWS = [
    ("2024-01-08", "上海", "智能音箱", 120, 299),
    ("2024-01-15", "杭州", "扫地机器人", 45, 1899),
    ("2024-02-02", "南京", "智能音箱", 80, 299),
    ("2024-02-20", "苏州", "空气净化器", 60, 1299),
    ("2024-03-05", "上海", "扫地机器人", 70, 1899),
    ("2024-03-18", "合肥", "空气净化器", 35, 1299),
]

CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京"]
CATEGORIES = {"家电": 899.0, "服装": 199.0, "食品": 59.0, "数码": 1599.0, "图书": 49.0}
CHANNELS = ["线上", "门店"]
STATUSES = ["已完成"] * 8 + ["已退款", "配送中"]


def orders(n=10_000, seed=23):
    """The generated order table: 订单号, 日期, 城市, 品类, 渠道, 数量, 单价, 金额, 状态."""
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        category = rng.choice(list(CATEGORIES))
        price = round(CATEGORIES[category] * rng.uniform(0.8, 1.2), 2)
        quantity = rng.randint(1, 20)
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        rows.append({
            "订单号": f"SO-{i:05d}", "日期": f"2024-{month:02d}-{day:02d}", "城市": rng.choice(CITIES),
            "品类": category, "渠道": rng.choice(CHANNELS), "数量": quantity, "单价": price,
            "金额": round(quantity * price, 2), "状态": rng.choice(STATUSES),
        })
    return rows


def questions(o):
    """(question, expected answer) pairs with the answers computed from the data."""
    s = SALES_ROWS
    by_city = defaultdict(int)
    for r in s:
        by_city[r[1]] += r[3]
    amount = lambda rows: round(sum(r["金额"] for r in rows), 2)
    city_amount = defaultdict(float)
    for r in o:
        city_amount[r["城市"]] += r["金额"]
    month = lambda r: int(r["日期"][5:7])
    return [
        ("销售明细表里一共有多少条销售记录？", len(s)),
        ("智能音箱一共卖了多少台？", sum(r[3] for r in s if r[2] == "智能音箱")),
        ("上海的销售数量合计是多少？", by_city["上海"]),
        ("扫地机器人的销售数量是多少？", sum(r[3] for r in s if r[2] == "扫地机器人")),
        ("所有产品的销售数量总和是多少？", sum(r[3] for r in s)),
        ("一季度的销售金额（数量乘以单价）合计是多少元？", sum(r[3] * r[4] for r in s)),
        ("空气净化器的销售金额（数量乘以单价）是多少元？", sum(r[3] * r[4] for r in s if r[2] == "空气净化器")),
        ("2月份有几笔销售？", sum(1 for r in s if r[0][5:7] == "02")),
        ("哪个城市的销售数量最多？", max(by_city, key=by_city.get)),
        ("平均每笔销售的数量是多少？", sum(r[3] for r in s) / len(s)),
        ("杭州的销售金额（数量乘以单价）是多少元？", sum(r[3] * r[4] for r in s if r[1] == "杭州")),
        ("单价最高的产品是什么？", max(s, key=lambda r: r[4])[2]),
        ("订单表一共有多少个订单？", len(o)),
        ("北京一共有多少个订单？", sum(1 for r in o if r["城市"] == "北京")),
        ("状态为已退款的订单有多少个？", sum(1 for r in o if r["状态"] == "已退款")),
        ("线上渠道的订单金额合计是多少？", amount([r for r in o if r["渠道"] == "线上"])),
        ("3月份的订单有多少个？", sum(1 for r in o if month(r) == 3)),
        ("家电品类的订单一共卖了多少件（数量合计）？", sum(r["数量"] for r in o if r["品类"] == "家电")),
        ("深圳门店渠道的订单有多少个？", sum(1 for r in o if r["城市"] == "深圳" and r["渠道"] == "门店")),
        ("平均每个订单的金额是多少？", sum(r["金额"] for r in o) / len(o)),
        ("单笔订单金额最大是多少？", max(r["金额"] for r in o)),
        ("12月份已完成订单的金额合计是多少？", amount([r for r in o if month(r) == 12 and r["状态"] == "已完成"])),
        ("哪个城市的订单金额合计最高？", max(city_amount, key=city_amount.get)),
        ("上海订单的平均数量是多少？", sum(r["数量"] for r in o if r["城市"] == "上海")
         / sum(1 for r in o if r["城市"] == "上海")),
        ("数量大于等于15的订单有多少个？", sum(1 for r in o if r["数量"] >= 15)),
        ("金额超过5000元的订单有多少个？", sum(1 for r in o if r["金额"] > 5000)),
        ("第一季度（1到3月）的订单金额合计是多少？", amount([r for r in o if month(r) <= 3])),
        ("服装品类有多少个已退款的订单？", sum(1 for r in o if r["品类"] == "服装" and r["状态"] == "已退款")),
        ("成都线上渠道的订单一共多少件（数量合计）？",
         sum(r["数量"] for r in o if r["城市"] == "成都" and r["渠道"] == "线上")),
        ("订单号SO-04567的金额是多少？", next(r["金额"] for r in o if r["订单号"] == "SO-04567")),
        ("广州的订单有多少个？", sum(1 for r in o if r["城市"] == "广州")),
        ("配送中的订单金额合计是多少？", amount([r for r in o if r["状态"] == "配送中"])),
    ]


NUMBER = re.compile(r"-?\d[\d,，]*(?:\.\d+)?")


def exact(answer, want, question=""):
    """Whether `answer` holds `want` (see the module's doc); the answer's echo of a number
    the question holds (the 2 of "2月份") does not count."""
    if isinstance(want, str):
        return want in answer
    numbers = NUMBER.findall(answer)
    for echoed in NUMBER.findall(question):
        if echoed in numbers:
            numbers.remove(echoed)
    for text in numbers:
        text = text.replace(",", "").replace("，", "")
        try:
            got = float(text)
        except ValueError:
            continue
        if float(want).is_integer() and abs(got - want) < 1e-9:
            return True
        if not float(want).is_integer() and abs(got - want) <= max(0.01, abs(want) * 0.001):
            return True
    return False


def ask(base, bot, question):
    events = call(base, "POST", f"/api/bots/{bot}/chat", {"message": question}, stream=True)
    done = next((d for n, d in events if n == "done"), {})
    calls = [d for n, d in events if n == "tool_call"]
    results = [d for n, d in events if n == "tool_result"]
    return done, calls, results


def bench_model(model, threads, only):
    models_dir = Path(os.environ.get("ZHIKU_MODELS_DIR", ROOT / "models"))
    data = tempfile.mkdtemp(prefix="zhiku-bench-tables-")
    env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=data, ZHIKU_MODELS_DIR=str(models_dir),
               ZHIKU_ADMIN_TOKEN=TOKEN, ZHIKU_LLM__MODEL=model, ZHIKU_LLM__THREADS=str(threads),
               ZHIKU_LOG="warn")
    server, base = zhiku_server.start(TARGET / "release/zhiku", env)
    try:
        rows = orders()
        order_csv = Path(data) / "订单2024.csv"
        with order_csv.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        kb = call(base, "POST", "/api/kbs", {"name": "sales"})["id"]
        upload(base, kb, SALES)
        upload(base, kb, order_csv)
        while any(d["status"] not in ("indexed", "failed")
                  for d in call(base, "GET", f"/api/kbs/{kb}/documents")):
            time.sleep(1)
        settings = {"persona": PERSONA, "knowledge_bases": [kb],
                    "model": {"temperature": 0, "max_tokens": 160}}
        bots = {}
        if only in (None, "table"):
            bots["table_query"] = call(base, "POST", "/api/bots", {
                "name": "tables", **settings, "tools": [{"type": "table_query"}]})["id"]
        if only in (None, "plain"):
            bots["retrieval only"] = call(base, "POST", "/api/bots", {"name": "plain", **settings})["id"]
        results = []
        for label, bot in bots.items():
            scored = []
            for question, want in questions(rows):
                started = time.time()
                done, calls, tool_results = ask(base, bot, question)
                answer = done.get("answer", "")
                ok = exact(answer, want, question)
                sql = [json.loads(c["function"]["arguments"] or "{}").get("sql") for c in calls]
                scored.append({"question": question, "want": want, "answer": answer, "exact": ok,
                               "sql": sql, "tool_ok": [r.get("ok") for r in tool_results],
                               "citations": [c.get("label") for c in done.get("citations", [])],
                               "seconds": round(time.time() - started, 1)})
                print(f"{model} [{label}] {question} → {answer[:60]!r} {'✓' if ok else '✗'} "
                      f"(want {want}; sql {sql}) {scored[-1]['seconds']} s", flush=True)
            results.append({"model": model, "bot": label, "rows": scored})
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="qwen2.5-coder-1.5b-instruct-q4_k_m,qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", choices=["table", "plain"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [r for m in args.models.split(",") for r in bench_model(m, args.threads, args.only)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads {args.threads}")
    print("| model | bot | questions | exact answers | a query ran | median s |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        rows = r["rows"]
        n = len(rows)
        right = sum(x["exact"] for x in rows)
        ran = sum(1 for x in rows if any(x["tool_ok"]))
        median = sorted(x["seconds"] for x in rows)[n // 2]
        print(f"| {r['model']} | {r['bot']} | {n} | {right} ({100 * right / n:.0f} %) | {ran} | {median} |")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
