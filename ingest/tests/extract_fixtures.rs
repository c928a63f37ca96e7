//! Every document fixture in the repository's `tests/fixtures/docs` gives the outcome its
//! MANIFEST row (`tests/fixtures/docs/MANIFEST.md`) promises.
//!
//! The fixtures live in the repository, so a fresh clone needs nothing beside it. A
//! fixture without an entry in `expectation()` fails the test, so new files can't slip in
//! untested. Phrases are compared ignoring whitespace, because pdf-extract spaces CJK text
//! differently from pdftotext, which the MANIFEST phrases come from.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ingest::Error;
use ingest::extract::{DocKind, ExtractLimits, Extracted, extract};

/// `tests/fixtures/docs` of the workspace root (this crate is `ingest/`, one level down).
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/docs")
}

/// What the MANIFEST says a fixture must give.
enum Expect {
    /// This kind, with these phrases (on this 1-based page: a PDF page, a slide, an image frame).
    Text(DocKind, &'static [(Option<u32>, &'static str)]),
    /// This error; the name is for messages.
    Fails(&'static str, fn(&Error) -> bool),
}

fn expectation(name: &str) -> Option<Expect> {
    use Expect::*;
    Some(match name {
        "zh-quarterly-report-22p.pdf" => Text(
            DocKind::Pdf,
            &[
                (Some(1), "东北电气发展股份有限公司"),
                (Some(2), "第一节 重要提示"),
                (Some(20), "投资活动产生的现金流量净额"),
            ],
        ),
        "en-federal-register-3col.pdf" => Text(
            DocKind::Pdf,
            &[
                (Some(1), "Airworthiness Directives; The Boeing"),
                (Some(1), "Federal Aviation Administration"),
            ],
        ),
        "en-table-nics-checks.pdf" => Text(
            DocKind::Pdf,
            &[
                (Some(1), "NICS Firearm Background Checks"),
                (Some(1), "Pre-Pawn"),
            ],
        ),
        "zh-table-land-use-standard.pdf" => Text(
            DocKind::Pdf,
            &[
                (Some(1), "安徽省建设用地使用标准"),
                (Some(1), "停车区用地指标基准值"),
            ],
        ),
        "encrypted-owner-password-only.pdf" => {
            Text(DocKind::Pdf, &[(Some(1), "pdf encryption test")])
        }
        // A two-page TIFF scan: an image document, one page per frame.
        "zh-scan-2p.tif" => Text(
            DocKind::Image,
            &[
                (Some(1), "行政处罚决定书"),
                (Some(2), "以上行为有手册备案资料"),
            ],
        ),
        // No text layer: read by OCR (tests/ocr.rs checks more of it).
        "zh-scanned-no-text.pdf" => Text(DocKind::Pdf, &[(Some(1), "行政处罚决定书")]),
        // pdf-extract panics on its GBK-EUC-H CMap; OCR reads the pages instead.
        "zh-gbk-euc-h-cjk-font.pdf" => Text(
            DocKind::Pdf,
            &[
                (Some(1), "浙江菲达环保科技股份有限公司"),
                (Some(1), "上海证券交易所"),
            ],
        ),
        "encrypted-user-password.pdf" | "encrypted-aes-user-password.pdf" => {
            Fails("Encrypted", |e| matches!(e, Error::Encrypted))
        }
        "truncated.pdf" => Fails("Corrupt", |e| matches!(e, Error::Corrupt { .. })),
        "empty.pdf" | "empty.txt" => Fails("Empty", |e| matches!(e, Error::Empty)),
        "not-a-pdf.pdf" => Fails(
            "Unsupported(image/png)",
            |e| matches!(e, Error::Unsupported { detected, .. } if detected == "image/png"),
        ),
        "zh-travel-policy.docx" => Text(
            DocKind::Docx,
            &[(None, "提高资金使用效率"), (None, "每晚住宿上限（元）")],
        ),
        "zh-sales.xlsx" => Text(
            DocKind::Xlsx,
            &[
                (None, "扫地机器人"),
                (None, "2024年第一季度华东区销售明细（测试数据）"),
            ],
        ),
        "zh-stock-merged.xlsx" => Text(
            DocKind::Xlsx,
            &[(None, "上海一仓"), (None, "盘点中，暂停出库")],
        ),
        "zh-stock-merged.ods" => Text(
            DocKind::Ods,
            &[(None, "上海一仓"), (None, "盘点中，暂停出库")],
        ),
        "zh-sales-grouped.xlsx" => Text(DocKind::Xlsx, &[(None, "销售额 / 一季度")]),
        "zh-sales-grouped.ods" => Text(DocKind::Ods, &[(None, "销售额 / 一季度")]),
        "zh-sales-grouped.csv" => Text(DocKind::Csv, &[(None, "销售额 / 一季度")]),
        "zh-slides.pptx" => Text(
            DocKind::Pptx,
            &[(Some(2), "各区域销售额"), (Some(3), "讲者备注")],
        ),
        "zh-travel-policy.doc" => Text(
            DocKind::Doc,
            &[
                (None, "提高资金使用效率"),
                (None, "实习生出差参照试用期员工标准执行"),
            ],
        ),
        "zh-travel-policy.odt" => Text(
            DocKind::Odt,
            &[
                (None, "每晚住宿上限（元）"),
                (None, "实习生出差参照试用期员工标准执行"),
            ],
        ),
        "zh-sales.xls" => Text(
            DocKind::Xls,
            &[
                (None, "扫地机器人"),
                (None, "2024年第一季度华东区销售明细（测试数据）"),
            ],
        ),
        "zh-sales.ods" => Text(
            DocKind::Ods,
            &[
                (None, "扫地机器人"),
                (None, "2024年第一季度华东区销售明细（测试数据）"),
            ],
        ),
        "zh-handbook.epub" => Text(
            DocKind::Epub,
            &[
                (Some(1), "新员工应在报到当天"),
                (Some(2), "研发部门的核心工作时间另行规定"),
                (Some(3), "逾期不予受理"),
            ],
        ),
        "zh-faq.json" => Text(
            DocKind::Json,
            &[
                (Some(2), "答案.上限[0].每晚（元）: 600"),
                (Some(3), "已发布: false"),
            ],
        ),
        "zh-tickets.jsonl" => Text(
            DocKind::Jsonl,
            &[
                (Some(1), "处理.步骤: 重启打印服务, 重新安装驱动"),
                (Some(4), "会议室投影仪黑屏"),
            ],
        ),
        "zh-faq.csv" | "zh-faq-gbk.csv" => Text(DocKind::Csv, &[(None, "如何重置密码？")]),
        "zh-guide.md" => Text(DocKind::Markdown, &[(None, "倒数排名融合")]),
        "zh-readme-setext.md" => Text(DocKind::Markdown, &[(None, "余弦相似度")]),
        "zh-article.html" => Text(DocKind::Html, &[(None, "漂泊信天翁是体型最大的一种信天翁")]),
        "zh-article-gbk.html" => Text(DocKind::Html, &[(None, "漂泊信天翁")]),
        "zh-gbk.txt" => Text(DocKind::Text, &[(None, "牛蒡属的植物")]),
        "zh-utf8-bom.txt" => Text(DocKind::Text, &[(None, "史普尼克1号卫星")]),
        "zh-utf16le-bom.txt" => Text(DocKind::Text, &[(None, "牛蒡属的植物")]),
        "llm-intro-zh/01.txt" => Text(DocKind::Text, &[(None, "大语言模型(LLM)")]),
        "llm-intro-zh/02.txt" => Text(DocKind::Text, &[(None, "大语言模型LLM基础扫盲速通版")]),
        "llm-intro-zh/03.txt" => Text(DocKind::Text, &[(None, "什么是大语言模型?")]),
        "llm-intro-zh/04.txt" => Text(DocKind::Text, &[(None, "前言")]),
        "llm-intro-zh/05.txt" => Text(DocKind::Text, &[(None, "大语言模型LLM的基本逻辑")]),
        _ => return None,
    })
}

/// Fixture files (relative names), the MANIFEST and checksums excluded.
fn fixture_files() -> Vec<String> {
    let root = fixtures_dir();
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("fixture folder {}: {e}", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if relative != "MANIFEST.md" && relative != "SHA256SUMS" {
                    found.push(relative);
                }
            }
        }
    }
    found.sort();
    found
}

fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Where each phrase is missing, as messages (empty when all are found).
fn missing_phrases(doc: &Extracted, phrases: &[(Option<u32>, &str)]) -> Vec<String> {
    let mut missing = Vec::new();
    for (page, phrase) in phrases {
        let haystack: String = doc
            .sections
            .iter()
            .filter(|s| page.is_none() || s.page == *page)
            .map(|s| s.text.as_str())
            .collect();
        if !squash(&haystack).contains(&squash(phrase)) {
            let shown: String = haystack.chars().take(300).collect();
            missing.push(format!(
                "{phrase:?} not on page {page:?}; that text starts {shown:?}"
            ));
        }
    }
    missing
}

/// The promises every extractor makes about its text.
fn normal_form_problems(doc: &Extracted) -> Vec<String> {
    let mut problems = Vec::new();
    for section in &doc.sections {
        let text = &section.text;
        if text.contains('\0') || text.contains('\u{feff}') || text.contains('\r') {
            problems.push(format!("section {:?} has NUL, BOM or CR", section.page));
        }
        if text.lines().any(|l| l != l.trim_end())
            || text.contains("\n\n\n")
            || text.trim() != text.trim_matches('\n')
        {
            problems.push(format!(
                "section {:?} has trailing spaces or extra blank lines",
                section.page
            ));
        }
        if text.is_empty() {
            problems.push(format!("section {:?} is empty", section.page));
        }
    }
    problems
}

fn outcome_line(result: &Result<Extracted, Error>) -> String {
    match result {
        Ok(doc) => {
            let chars: usize = doc.sections.iter().map(|s| s.text.chars().count()).sum();
            let pages = doc.page_count.map_or("-".to_owned(), |n| n.to_string());
            format!(
                "ok {} | {chars} chars | {} sections | {pages} pages | title {:?}",
                doc.kind.as_str(),
                doc.sections.len(),
                doc.title
            )
        }
        Err(e) => format!("{} | {e}", e.code()),
    }
}

#[test]
fn every_fixture_meets_the_manifest() {
    let files = fixture_files();
    assert!(
        files.len() >= 35,
        "expected the MANIFEST's fixtures, found {files:?}"
    );
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for name in &files {
        let Some(expect) = expectation(name) else {
            failures.push(format!(
                "{name}: no expectation in this test; add its MANIFEST row"
            ));
            continue;
        };
        let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join(name)).unwrap().into();
        let file_name = name.rsplit('/').next().unwrap_or(name);
        let started = Instant::now();
        let result = extract(file_name, bytes, &ExtractLimits::default());
        let elapsed_ms = started.elapsed().as_millis();
        report.push(format!(
            "{name} | {} | {elapsed_ms} ms",
            outcome_line(&result)
        ));
        let problems: Vec<String> = match (&expect, &result) {
            (Expect::Text(kind, phrases), Ok(doc)) => {
                let mut p = missing_phrases(doc, phrases);
                if doc.kind != *kind {
                    p.push(format!("kind {:?}, expected {kind:?}", doc.kind));
                }
                p.extend(normal_form_problems(doc));
                p
            }
            (Expect::Fails(_, is_expected), Err(e)) if is_expected(e) => Vec::new(),
            (Expect::Fails(wanted, _), _) => {
                vec![format!("expected {wanted}, got {}", outcome_line(&result))]
            }
            (_, _) => vec![format!("unexpected outcome: {}", outcome_line(&result))],
        };
        failures.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
    }
    eprintln!(
        "fixture | outcome | chars | sections | pages | title | time\n{}",
        report.join("\n")
    );
    assert!(
        failures.is_empty(),
        "fixtures not as the MANIFEST says:\n{}",
        failures.join("\n")
    );
}

#[test]
fn pdf_pages_keep_their_numbers() {
    let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join("zh-quarterly-report-22p.pdf"))
        .unwrap()
        .into();
    let doc = extract("report.pdf", bytes, &ExtractLimits::default()).unwrap();
    assert_eq!(doc.page_count, Some(22));
    let pages: Vec<u32> = doc.sections.iter().filter_map(|s| s.page).collect();
    assert!(
        pages.windows(2).all(|w| w[0] < w[1]) && pages.iter().all(|p| (1..=22).contains(p)),
        "{pages:?}"
    );
}

#[test]
fn docx_keeps_structure_and_skips_page_chrome() {
    let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join("zh-travel-policy.docx"))
        .unwrap()
        .into();
    let doc = extract("policy.docx", bytes, &ExtractLimits::default()).unwrap();
    let text = &doc.sections[0].text;
    assert_eq!(doc.title.as_deref(), Some("员工差旅报销制度（测试文档）"));
    assert!(text.contains("\n# 第一章 总则\n"), "{text}");
    assert!(
        text.contains("- 部门经理及以上人员可乘坐飞机经济舱或高铁一等座；"),
        "{text}"
    );
    assert!(
        text.contains(
            "城市类别 | 代表城市 | 每晚住宿上限（元）\n一类 | 北京、上海、广州、深圳 | 600"
        ),
        "{text}"
    );
    let header = read_zip_entry("zh-travel-policy.docx", "word/header1.xml");
    let chrome: String = header
        .split('<')
        .filter_map(|t| t.split_once('>').map(|(_, s)| s))
        .collect();
    assert!(
        !chrome.trim().is_empty() && !text.contains(chrome.trim()),
        "header text {chrome:?} leaked into {text}"
    );
}

fn read_zip_entry(fixture: &str, entry: &str) -> String {
    let bytes = std::fs::read(fixtures_dir().join(fixture)).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    std::io::read_to_string(archive.by_name(entry).unwrap()).unwrap()
}

#[test]
fn xlsx_rows_carry_their_headers_and_formulas() {
    let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join("zh-sales.xlsx"))
        .unwrap()
        .into();
    let doc = extract("sales.xlsx", bytes, &ExtractLimits::default()).unwrap();
    let titles: Vec<_> = doc
        .sections
        .iter()
        .map(|s| s.title.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(titles, ["销售明细", "说明"]);
    let sheet = &doc.sections[0].text;
    let lines: Vec<&str> = sheet.lines().collect();
    assert_eq!(lines[0], "2024年第一季度华东区销售明细（测试数据）");
    assert_eq!(
        lines[1],
        "日期 | 城市 | 产品 | 数量 | 单价（元） | 金额（元）"
    );
    assert_eq!(
        lines[2], "2024-01-08 | 上海 | 智能音箱 | 120 | 299 | =D3*E3",
        "{sheet}"
    );
    assert!(sheet.contains("=SUM(F3:F8)"), "{sheet}");
    // The merged title and the header head the table; rows are numbered as Excel shows them.
    let table = doc.sections[0].table.as_ref().unwrap();
    assert_eq!(table.header_lines, 2);
    assert_eq!(table.rows[..3], [1, 2, 3]);
}

#[test]
fn html_keeps_the_article_only() {
    for name in ["zh-article.html", "zh-article-gbk.html"] {
        let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join(name)).unwrap().into();
        let doc = extract(name, bytes, &ExtractLimits::default()).unwrap();
        let text = &doc.sections[0].text;
        assert_eq!(
            doc.title.as_deref(),
            Some("漂泊信天翁 - 鸟类百科（测试页面）"),
            "{name}"
        );
        for chrome in ["首页", "广告", "dataLayer", "版权所有", "font-family"] {
            assert!(
                !text.contains(chrome),
                "{name}: {chrome} leaked into {text}"
            );
        }
        assert!(text.starts_with("# 漂泊信天翁\n"), "{name}: {text}");
        assert!(text.contains("中文名 | 分布 | 备注"), "{name}: {text}");
        assert!(
            text.contains("- 第二条要点：含有<转义字符>与&符号"),
            "{name}: {text}"
        );
    }
}

#[test]
fn markdown_drops_front_matter_and_comments() {
    let guide: Arc<[u8]> = std::fs::read(fixtures_dir().join("zh-guide.md"))
        .unwrap()
        .into();
    let doc = extract("guide.md", guide, &ExtractLimits::default()).unwrap();
    assert!(!doc.sections[0].text.contains("HTML 注释"));
    assert!(doc.sections[0].text.contains("# 这一行是 Python 注释"));
    let setext: Arc<[u8]> = std::fs::read(fixtures_dir().join("zh-readme-setext.md"))
        .unwrap()
        .into();
    let doc = extract("readme.md", setext, &ExtractLimits::default()).unwrap();
    assert!(!doc.sections[0].text.contains("tags:"));
    assert_eq!(doc.title.as_deref(), Some("向量检索小抄"));
}

#[test]
fn csv_gbk_and_utf8_agree() {
    let read = |name: &str| {
        let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join(name)).unwrap().into();
        extract(name, bytes, &ExtractLimits::default())
            .unwrap()
            .sections[0]
            .text
            .clone()
    };
    let utf8 = read("zh-faq.csv");
    assert_eq!(utf8, read("zh-faq-gbk.csv"));
    assert_eq!(utf8.lines().count(), 6, "the header and five rows: {utf8}");
    assert!(utf8.starts_with("编号 | 问题 | 答案 | 分类\n"), "{utf8}");
    assert!(
        utf8.contains("\n5 | 产品说明书里写的 \"IP67\" 是什么意思？ | "),
        "{utf8}"
    );
}

#[test]
fn pptx_slides_are_pages_in_presentation_order() {
    let doc = extract(
        "deck.pptx",
        std::fs::read(fixtures_dir().join("zh-slides.pptx"))
            .unwrap()
            .into(),
        &ExtractLimits::default(),
    )
    .unwrap();
    assert_eq!(doc.title.as_deref(), Some("季度经营回顾（测试演示文稿）"));
    assert_eq!(doc.page_count, Some(3));
    let slides: Vec<(Option<u32>, &str)> = doc
        .sections
        .iter()
        .map(|s| (s.page, s.text.as_str()))
        .collect();
    assert_eq!(
        slides,
        [
            (
                Some(1),
                "2024年第一季度经营回顾\n知库测试数据，内容纯属虚构"
            ),
            (
                Some(2),
                "各区域销售额\n区域 | 销售额（万元） | 环比\n华东 | 1280 | +12%\n华南 | 960 | -3%"
            ),
            (
                Some(3),
                "重点工作\n华东区扫地机器人销量同比增长百分之三十\n新开设杭州与苏州两个售后服务网点\n\n\
                 讲者备注：先说明增长主要来自线上渠道的促销活动。"
            ),
        ]
    );
}

fn extract_fixture(name: &str) -> Extracted {
    let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join(name)).unwrap().into();
    extract(name, bytes, &ExtractLimits::default()).unwrap()
}

#[test]
fn doc_keeps_tables_and_footnotes_through_antiword() {
    let doc = extract_fixture("zh-travel-policy.doc");
    let text = &doc.sections[0].text;
    assert!(text.contains("\n第一章 总则\n"), "{text}");
    assert!(
        text.contains(
            "城市类别 | 代表城市 | 每晚住宿上限（元）\n一类 | 北京、上海、广州、深圳 | 600"
        ),
        "{text}"
    );
    assert!(text.contains("部门经理及以上人员可乘坐飞机经济舱或高铁一等座；"));
    // The footnote's mark stays in the text and the note follows at the end.
    assert!(text.contains("试用期员工[1]。"), "{text}");
    assert!(
        text.ends_with("[1]\t实习生出差参照试用期员工标准执行。"),
        "{text}"
    );
    // Headers and footers are page chrome, as in the DOCX.
    assert!(!text.contains("内部资料"), "{text}");
}

#[test]
fn odt_keeps_headings_lists_tables_and_notes() {
    let doc = extract_fixture("zh-travel-policy.odt");
    let text = &doc.sections[0].text;
    assert_eq!(doc.title.as_deref(), Some("员工差旅报销制度（测试文档）"));
    assert!(text.starts_with("# 员工差旅报销制度\n"), "{text}");
    assert!(text.contains("\n# 第一章 总则\n"), "{text}");
    assert!(
        text.contains("- 部门经理及以上人员可乘坐飞机经济舱或高铁一等座；"),
        "{text}"
    );
    assert!(
        text.contains(
            "城市类别 | 代表城市 | 每晚住宿上限（元）\n一类 | 北京、上海、广州、深圳 | 600"
        ),
        "{text}"
    );
    assert!(
        text.contains("试用期员工[1]。\n[1] 实习生出差参照试用期员工标准执行。\n"),
        "{text}"
    );
    assert!(!text.contains("内部资料"), "{text}");
}

#[test]
fn workbooks_read_like_the_xlsx_they_were_saved_from() {
    let xlsx = extract_fixture("zh-sales.xlsx");
    for name in ["zh-sales.xls", "zh-sales.ods"] {
        let doc = extract_fixture(name);
        let titles: Vec<_> = doc.sections.iter().map(|s| s.title.clone()).collect();
        let xlsx_titles: Vec<_> = xlsx.sections.iter().map(|s| s.title.clone()).collect();
        assert_eq!(titles, xlsx_titles, "{name}");
        let sheet = &doc.sections[0].text;
        let lines: Vec<&str> = sheet.lines().collect();
        assert_eq!(
            lines[0], "2024年第一季度华东区销售明细（测试数据）",
            "{name}"
        );
        // LibreOffice calculated the formulas when it saved: the values are there.
        assert_eq!(
            lines[2], "2024-01-08 | 上海 | 智能音箱 | 120 | 299 | 35880",
            "{name}: {sheet}"
        );
        assert_eq!(doc.sections[0].table, xlsx.sections[0].table, "{name}");
        assert_eq!(doc.sections[1].text, xlsx.sections[1].text, "{name}");
    }
}

#[test]
fn epub_chapters_are_pages_in_spine_order() {
    let doc = extract_fixture("zh-handbook.epub");
    assert_eq!(doc.title.as_deref(), Some("员工手册（测试电子书）"));
    assert_eq!(doc.page_count, Some(3));
    let chapters: Vec<(Option<u32>, Option<&str>)> = doc
        .sections
        .iter()
        .map(|s| (s.page, s.title.as_deref()))
        .collect();
    assert_eq!(
        chapters,
        [
            (Some(1), Some("第一章 入职须知")),
            (Some(2), Some("第二章 考勤与休假")),
            (Some(3), Some("第三章 报销")),
        ]
    );
    let second = &doc.sections[1].text;
    assert!(second.starts_with("# 第二章 考勤与休假\n"), "{second}");
    assert!(
        second.contains("假期类型 | 天数 | 备注\n年假 | 5 | 工作满一年后享有"),
        "{second}"
    );
    assert!(
        second.ends_with("1 研发部门的核心工作时间另行规定。"),
        "{second}"
    );
    assert!(
        doc.sections[0]
            .text
            .contains("## 一、报到材料\n\n- 身份证原件及复印件")
    );
    assert!(!doc.sections.iter().any(|s| s.text.contains("目录")));
}

#[test]
fn json_records_and_jsonl_lines_are_pages() {
    let faq = extract_fixture("zh-faq.json");
    assert_eq!(faq.page_count, Some(3));
    assert_eq!(
        faq.sections[1].text,
        "id: 102\n问题: 出差住宿的报销上限是多少？\n答案.说明: 按城市类别限额报销，超出部分由个人承担。\n\
         答案.上限[0].城市类别: 一类\n答案.上限[0].每晚（元）: 600\n\
         答案.上限[1].城市类别: 二类\n答案.上限[1].每晚（元）: 450\n已发布: true"
    );
    let tickets = extract_fixture("zh-tickets.jsonl");
    let pages: Vec<_> = tickets.sections.iter().map(|s| s.page).collect();
    // Line 3 is blank: the pages are the lines, so a citation finds its record.
    assert_eq!(pages, [Some(1), Some(2), Some(4)]);
    assert_eq!(
        tickets.sections[1].text,
        "工单: T-2024-002\n标题: 邮箱容量不足\n状态: 处理中\n紧急: true"
    );
}

#[test]
fn a_refused_type_names_the_accepted_list() {
    let mut ppt = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
    ppt.extend(
        "PowerPoint Document"
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    let error = extract("deck.ppt", ppt.into(), &ExtractLimits::default()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("save it as .pptx"), "{message}");
    assert!(
        message.ends_with(&format!("accepted: {}", ingest::extract::accepted_list())),
        "{message}"
    );
    for ext in ["doc", "xls", "odt", "ods", "epub", "json", "jsonl"] {
        assert!(message.contains(ext), "{ext} missing from {message}");
    }
}

#[test]
fn utf16_with_a_bom_reads_like_its_gbk_twin() {
    let read = |name: &str, bytes: Arc<[u8]>| {
        extract(name, bytes, &ExtractLimits::default())
            .unwrap()
            .sections[0]
            .text
            .clone()
    };
    let gbk = read(
        "a.txt",
        std::fs::read(fixtures_dir().join("zh-gbk.txt"))
            .unwrap()
            .into(),
    );
    let le = std::fs::read(fixtures_dir().join("zh-utf16le-bom.txt")).unwrap();
    assert_eq!(read("a.txt", le.clone().into()), gbk);
    // Notepad's "Unicode big endian": the same text with each pair swapped.
    let be: Vec<u8> = le.chunks(2).flat_map(|p| [p[1], p[0]]).collect();
    assert_eq!(&be[..2], b"\xFE\xFF");
    assert_eq!(read("a.txt", be.into()), gbk);
}

fn docx_zip(entries: &[(&str, &[u8])]) -> Arc<[u8]> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner().into()
}

#[test]
fn zip_bomb_docx_is_too_large() {
    let document = b"<w:document><w:body><w:p><w:r><w:t>x</w:t></w:r></w:p></w:body></w:document>";
    // Many entries, default limits.
    let mut names: Vec<String> = (0..10_001).map(|i| format!("word/media/{i}.bin")).collect();
    names.push("word/document.xml".into());
    let entries: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| {
            (
                n.as_str(),
                if n.ends_with(".xml") {
                    &document[..]
                } else {
                    b""
                },
            )
        })
        .collect();
    let many = extract("many.docx", docx_zip(&entries), &ExtractLimits::default());
    assert!(matches!(many, Err(Error::TooLarge { .. })), "{many:?}");

    // One entry that inflates past the limit (deflated zeros compress about 1000:1).
    let limits = ExtractLimits {
        max_uncompressed_bytes: 8 * 1024 * 1024,
        ..ExtractLimits::default()
    };
    let zeros = vec![0u8; 9 * 1024 * 1024];
    let bomb = docx_zip(&[
        ("word/document.xml", document),
        ("word/media/zeros.bin", &zeros),
    ]);
    assert!(
        bomb.len() < 100_000,
        "the bomb should be small: {} bytes",
        bomb.len()
    );
    let huge = extract("bomb.docx", bomb.clone(), &limits);
    assert!(matches!(huge, Err(Error::TooLarge { .. })), "{huge:?}");
    let as_xlsx = docx_zip(&[
        ("xl/workbook.xml", b"<workbook/>"),
        ("xl/zeros.bin", &zeros),
    ]);
    assert!(matches!(
        extract("bomb.xlsx", as_xlsx, &limits),
        Err(Error::TooLarge { .. })
    ));
    // The same file passes with room to spare, so the limit is what stopped it.
    let roomy = ExtractLimits {
        max_uncompressed_bytes: 16 * 1024 * 1024,
        ..ExtractLimits::default()
    };
    assert_eq!(
        extract("bomb.docx", bomb, &roomy).unwrap().sections[0].text,
        "x"
    );
}

#[test]
fn random_binary_named_txt_is_unsupported() {
    // xorshift: deterministic noise without a rand dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let result = extract("x.txt", noise.into(), &ExtractLimits::default());
    assert!(
        matches!(result, Err(Error::Unsupported { .. })),
        "{result:?}"
    );
}

#[test]
fn a_slow_parser_times_out() {
    let bytes: Arc<[u8]> = std::fs::read(fixtures_dir().join("en-federal-register-3col.pdf"))
        .unwrap()
        .into();
    let limits = ExtractLimits {
        timeout_ms: 1,
        ..ExtractLimits::default()
    };
    let result = extract("slow.pdf", bytes, &limits);
    assert!(
        matches!(result, Err(Error::TimedOut { limit_ms: 1 })),
        "{result:?}"
    );
}
