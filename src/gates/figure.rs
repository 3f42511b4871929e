//! Figures: a gate's number (coverage, mutation score) pulled out of its output by
//! a one-group regex, and held to the gate's `min`/`max`.

use regex::Regex;

use super::config::{Figure, GateConfigError};

impl Figure {
    pub(super) fn compile(&self, key: &str) -> Result<Regex, GateConfigError> {
        let re = Regex::new(&self.regex).map_err(|source| GateConfigError::Regex {
            key: format!("{key}.regex"),
            source,
        })?;
        let groups = re.captures_len() - 1;
        if groups != 1 {
            return Err(GateConfigError::invalid(
                format!("{key}.regex"),
                format!("needs exactly one capture group, around the number; found {groups}"),
            ));
        }
        for (name, bound) in [("min", self.min), ("max", self.max)] {
            if bound.is_some_and(|b| !b.is_finite()) {
                return Err(GateConfigError::invalid(
                    format!("{key}.{name}"),
                    "must be a finite number",
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max) {
            if min > max {
                return Err(GateConfigError::invalid(
                    key.to_string(),
                    format!("min ({min}) is greater than max ({max})"),
                ));
            }
        }
        Ok(re)
    }

    /// Why `value` is out of bounds, if it is.
    pub(super) fn violation(&self, value: f64) -> Option<String> {
        if let Some(min) = self.min.filter(|m| value < *m) {
            return Some(format!("figure {value} is below the minimum {min}"));
        }
        if let Some(max) = self.max.filter(|m| value > *m) {
            return Some(format!("figure {value} is above the maximum {max}"));
        }
        None
    }
}

/// The last match's capture, as a number.
pub(super) fn extract_figure(re: &Regex, text: &str) -> Result<f64, String> {
    let Some(caps) = re.captures_iter(text).last() else {
        return Err(format!(
            "figure regex '{}' matched nothing in the output",
            re.as_str()
        ));
    };
    let raw = caps.get(1).map_or("", |m| m.as_str()).trim();
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            format!(
                "figure regex '{}' captured '{raw}', which is not a number",
                re.as_str()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::*;

    #[test]
    fn coverage_regexes_match_real_tool_output() {
        let check = |name: &str, sample: &str, want: f64| {
            let cfg: serde_yaml::Value = serde_yaml::from_str(template(name).unwrap()).unwrap();
            let set: GateSet = serde_yaml::from_value(cfg["gates"].clone()).unwrap();
            let fig = set.test.iter().find_map(|g| g.figure.clone()).unwrap();
            let re = fig.compile("t").unwrap();
            assert_eq!(extract_figure(&re, sample), Ok(want), "{name}");
        };
        check(
            "rust",
            "Filename  Regions  Missed Regions  Cover\n---\nsrc/lib.rs  100  12  88.00%  10  1  90.00%\nTOTAL  200  30  85.00%  20  2  90.00%  400  40  90.00%\n",
            85.0,
        );
        check(
            "python",
            "Name    Stmts   Miss  Cover\n---\napp.py     40      4    90%\nTOTAL      80     12    85%\n",
            85.0,
        );
        check(
            "node",
            "=============================== Coverage summary ===============================\nStatements   : 86.2% ( 100/116 )\nBranches     : 75% ( 30/40 )\nFunctions    : 90% ( 18/20 )\nLines        : 84.61% ( 99/117 )\n",
            84.61,
        );
    }
}
