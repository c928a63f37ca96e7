//! The built-in tools: today's date and a calculator. Small models misjudge both: they
//! know no date after their training, and multiply large numbers in their head wrongly.

use serde_json::Value;

/// Today's date, the weekday and the time now, in the server's time zone.
pub(super) fn current_time() -> String {
    let now = chrono::Local::now();
    const WEEKDAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
    let weekday = WEEKDAYS[chrono::Datelike::weekday(&now).num_days_from_monday() as usize];
    format!(
        "{} 星期{weekday} ({}), {} UTC{}",
        now.format("%Y-%m-%d"),
        now.format("%A"),
        now.format("%H:%M:%S"),
        now.format("%:z")
    )
}

/// The value of `{"expression": …}`.
pub(super) fn calculate(arguments: &Value) -> std::result::Result<String, String> {
    let expression = arguments
        .get("expression")
        .and_then(Value::as_str)
        .ok_or("give the expression as {\"expression\": \"(1200-950)/950*100\"}")?;
    // What people (and models) write for the operators exmex spells otherwise.
    let ascii: String = expression
        .chars()
        .map(|c| match c {
            '×' | '＊' => '*',
            '÷' | '／' => '/',
            '（' => '(',
            '）' => ')',
            '＋' => '+',
            '－' | '−' => '-',
            other => other,
        })
        .filter(|c| *c != ',' && *c != '，')
        .collect();
    let value = exmex::eval_str::<f64>(&ascii)
        .map_err(|e| format!("cannot calculate '{expression}': {e}"))?;
    if !value.is_finite() {
        return Err(format!("'{expression}' has no finite value"));
    }
    Ok(format!("{expression} = {}", number(value)))
}

/// A number as a person writes it: whole numbers without a fraction, others to 10
/// significant digits without trailing zeros.
pub(super) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let digits = 9 - value.abs().log10().floor() as i32;
    let text = format!("{:.*}", digits.clamp(0, 12) as usize, value);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_calculator_does_what_a_person_means() {
        let cases = [
            ("(1200-950)/950*100", "26.31578947"),
            ("7/2", "3.5"),
            ("12 × 3", "36"),
            ("1,234,567 * 3", "3703701"),
            ("sqrt(2)", "1.414213562"),
            ("2^10", "1024"),
        ];
        for (expression, want) in cases {
            let got = calculate(&json!({ "expression": expression })).unwrap();
            assert_eq!(got, format!("{expression} = {want}"));
        }
        assert!(calculate(&json!({"expression": "1/0"})).is_err());
        assert!(calculate(&json!({"expression": "rm -rf"})).is_err());
        assert!(calculate(&json!({})).is_err());
    }

    #[test]
    fn the_date_says_the_year_and_the_weekday() {
        let now = current_time();
        assert!(now.starts_with(&chrono::Local::now().format("%Y-").to_string()));
        assert!(now.contains("星期"), "{now}");
    }
}
