//! Spreadsheets and CSV files as tables, through the pipeline's real extract → clean →
//! split with the embedding model's tokenizer: what a user sees in a split preview.
//!
//! Needs the models (`ZHIKU_MODELS_DIR`, default `../models`), like `split_guard`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ingest::pipeline::{Pipeline, SourceDocument};
use ingest::split::{AUTO_MAX_TOKENS, ChunkDraft, SplitSettings};

mod common;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/docs")
}

fn pipeline() -> Pipeline {
    common::pipeline(Duration::from_secs(60))
}

fn chunks(name: &str, bytes: Vec<u8>, split: SplitSettings) -> Vec<ChunkDraft> {
    let source = SourceDocument {
        name: name.into(),
        bytes: bytes.into(),
        split,
        clean: Default::default(),
        ocr_languages: None,
    };
    pipeline().chunk(&source).unwrap().1
}

/// A CSV of `rows` orders, each row about 20 tokens.
fn orders_csv(rows: usize) -> String {
    let mut csv = String::from("订单号,客户,城市,产品,数量,金额（元）\r\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "A{:05},客户{},{},智能音箱,{},{}\r\n",
            i,
            i % 37,
            ["上海", "杭州", "南京"][i % 3],
            i % 9 + 1,
            (i % 9 + 1) * 299
        ));
    }
    csv
}

#[test]
fn csv_chunks_hold_many_rows_under_the_header() {
    let chunks = chunks(
        "orders.csv",
        orders_csv(200).into_bytes(),
        SplitSettings::Auto,
    );
    assert!(
        chunks.len() > 5 && chunks.len() < 40,
        "{} chunks",
        chunks.len()
    );
    let header = "订单号 | 客户 | 城市 | 产品 | 数量 | 金额（元）";
    let mut next_row = 2;
    for c in &chunks {
        assert!(c.token_count <= AUTO_MAX_TOKENS, "{c:?}");
        let lines: Vec<&str> = c.text.lines().collect();
        assert_eq!(
            lines[0], header,
            "every chunk starts with the header: {c:?}"
        );
        assert!(lines.len() > 5, "several rows per chunk: {c:?}");
        let last = next_row + lines.len() as u32 - 2;
        assert_eq!(
            c.label.as_deref(),
            Some(format!("第{next_row}–{last}行").as_str()),
            "{c:?}"
        );
        assert_eq!(
            lines[1],
            format!(
                "A{:05} | 客户{} | {} | 智能音箱 | {} | {}",
                next_row - 2,
                (next_row - 2) % 37,
                ["上海", "杭州", "南京"][(next_row as usize - 2) % 3],
                (next_row - 2) % 9 + 1,
                ((next_row - 2) % 9 + 1) * 299
            )
        );
        next_row = last + 1;
    }
    assert_eq!(next_row, 202, "every row exactly once, in order");
}

#[test]
fn a_merged_cell_belongs_to_every_row_it_spans() {
    let bytes = std::fs::read(fixtures_dir().join("zh-stock-merged.xlsx")).unwrap();
    let chunks = chunks("stock.xlsx", bytes, SplitSettings::Auto);
    let sheet: Vec<&ChunkDraft> = chunks
        .iter()
        .filter(|c| c.label.as_deref().is_some_and(|l| l.starts_with("库存 ")))
        .collect();
    assert_eq!(sheet.len(), 1, "a small sheet is one chunk: {chunks:#?}");
    assert_eq!(sheet[0].label.as_deref(), Some("库存 第3–9行"));
    let lines: Vec<&str> = sheet[0].text.lines().collect();
    assert_eq!(
        lines,
        [
            "2024年12月仓库库存（测试数据）",
            "区域 | 仓库 | 品类 | 数量 | 备注",
            "华东 | 上海一仓 | 智能音箱 | 320",
            "华东 | 上海一仓 | 扫地机器人 | 85 | 含展示机 5 台",
            "华东 | 杭州仓 | 智能音箱 | 140",
            "华东 | 杭州仓 | 空气净化器 | 60",
            "华南 | 广州仓 | 智能音箱 | 210",
            "华南 | 深圳仓 | 扫地机器人 | 40 | 12 月 20 日补货",
            "华北 | 盘点中，暂停出库 | 盘点中，暂停出库 | 盘点中，暂停出库 | 盘点中，暂停出库",
        ]
    );
    let notes: Vec<_> = chunks
        .iter()
        .filter_map(|c| c.label.as_deref())
        .filter(|l| l.starts_with("说明 "))
        .collect();
    assert_eq!(notes, ["说明 第1行"]);
}

#[test]
fn a_row_too_long_for_a_chunk_is_cut_and_each_piece_keeps_the_header() {
    let mut csv = orders_csv(3);
    let remark = "客户要求分批发货，第一批在月底前送达，其余视库存情况另行通知。".repeat(40);
    csv.push_str(&format!("A99999,客户0,上海,智能音箱,1,299,{remark}\r\n"));
    csv.push_str("A99998,客户1,杭州,智能音箱,2,598\r\n");
    let chunks = chunks("long.csv", csv.into_bytes(), SplitSettings::Auto);
    let pieces: Vec<&ChunkDraft> = chunks
        .iter()
        .filter(|c| c.label.as_deref() == Some("第5行"))
        .collect();
    assert!(pieces.len() >= 3, "{chunks:#?}");
    for c in &chunks {
        assert!(c.token_count <= AUTO_MAX_TOKENS, "{c:?}");
        assert!(
            c.text
                .starts_with("订单号 | 客户 | 城市 | 产品 | 数量 | 金额（元）\n"),
            "{c:?}"
        );
    }
    assert_eq!(chunks[0].label.as_deref(), Some("第2–4行"));
    assert_eq!(chunks.last().unwrap().label.as_deref(), Some("第6行"));
}

#[test]
fn the_custom_size_is_the_budget_for_rows() {
    let small = SplitSettings::Custom {
        separator: "\\n".into(),
        max_tokens: 64,
        overlap_tokens: 0,
    };
    let csv = orders_csv(60).into_bytes();
    let small_chunks = chunks("orders.csv", csv.clone(), small);
    let auto_chunks = chunks("orders.csv", csv, SplitSettings::Auto);
    assert!(small_chunks.len() > 2 * auto_chunks.len());
    assert!(small_chunks.iter().all(|c| c.token_count <= 64));
}

/// The lines of `name`'s chunks on sheet `sheet` (all chunks for a CSV, `sheet` "").
fn sheet_lines(name: &str, sheet: &str) -> (Vec<String>, Vec<String>) {
    let bytes = std::fs::read(fixtures_dir().join(name)).unwrap();
    let chunks = chunks(name, bytes, SplitSettings::Auto);
    let prefix = if sheet.is_empty() {
        String::new()
    } else {
        format!("{sheet} ")
    };
    let ours: Vec<&ChunkDraft> = chunks
        .iter()
        .filter(|c| c.label.as_deref().is_some_and(|l| l.starts_with(&prefix)))
        .collect();
    assert_eq!(ours.len(), 1, "a small sheet is one chunk: {chunks:#?}");
    let labels = ours.iter().filter_map(|c| c.label.clone()).collect();
    (ours[0].text.lines().map(str::to_owned).collect(), labels)
}

const GROUPED_TITLE: &str = "2024年上半年各地区销售额与利润（测试数据，单位：万元）";
const GROUPED_HEADER: &str =
    "区域 | 城市 | 销售额 / 一季度 | 销售额 / 二季度 | 利润 / 一季度 | 利润 / 二季度";

#[test]
fn a_two_row_header_names_each_column_by_its_group_and_its_name() {
    for name in ["zh-sales-grouped.xlsx", "zh-sales-grouped.ods"] {
        let (lines, labels) = sheet_lines(name, "销售");
        assert_eq!(
            lines,
            [
                GROUPED_TITLE,
                GROUPED_HEADER,
                "华东 | 上海 | 1200 | 1350 | 180 | 210",
                "华东 | 杭州 | 860 | 920 | 120 | 131",
                "华南 | 广州 | 990 | 1010 | 140 | 150",
                "华北 | 北京 | 1100 | 1180 | 160 | 175",
            ],
            "{name}"
        );
        assert_eq!(
            labels,
            ["销售 第4–7行"],
            "{name}: the header rows are not data"
        );
    }
}

#[test]
fn a_two_row_header_exported_to_csv_is_recognised_from_its_empty_cells() {
    // Excel writes a merged value in its first cell only: 销售额 over an empty cell, 区域
    // over nothing, and 华东 on its first row alone (a CSV cannot say it spans two).
    let (lines, labels) = sheet_lines("zh-sales-grouped.csv", "");
    assert_eq!(
        lines,
        [
            GROUPED_TITLE,
            GROUPED_HEADER,
            "华东 | 上海 | 1200 | 1350 | 180 | 210",
            "| 杭州 | 860 | 920 | 120 | 131",
            "华南 | 广州 | 990 | 1010 | 140 | 150",
            "华北 | 北京 | 1100 | 1180 | 160 | 175",
        ]
    );
    assert_eq!(labels, ["第4–7行"]);
}

#[test]
fn an_ods_merged_cell_belongs_to_every_row_it_spans_as_in_xlsx() {
    let (xlsx, xlsx_labels) = sheet_lines("zh-stock-merged.xlsx", "库存");
    let (ods, ods_labels) = sheet_lines("zh-stock-merged.ods", "库存");
    assert_eq!(ods, xlsx);
    assert_eq!(ods_labels, xlsx_labels);
    assert!(
        ods.contains(&"华东 | 杭州仓 | 空气净化器 | 60".to_owned()),
        "{ods:#?}"
    );
}

#[test]
fn a_first_row_of_data_under_a_header_with_gaps_stays_data() {
    // A header with an unnamed column, then rows: not a two-row header (numbers below).
    let csv = "产品,数量,,备注\r\n智能音箱,3,299,现货\r\n扫地机器人,1,1899,\r\n";
    let chunks = chunks("gaps.csv", csv.as_bytes().to_vec(), SplitSettings::Auto);
    assert_eq!(chunks.len(), 1, "{chunks:#?}");
    assert_eq!(
        chunks[0].text,
        "产品 | 数量 | 备注\n智能音箱 | 3 | 299 | 现货\n扫地机器人 | 1 | 1899"
    );
    assert_eq!(chunks[0].label.as_deref(), Some("第2–3行"));
}
