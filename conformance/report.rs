//! The reports of a client run: per client (text), and for every client together (text, JSON,
//! and an HTML heat map of verdicts by profile and case).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde_json::{Value, json};

use super::Outcome;
use super::client::{ClientRun, RunInfo};
use super::matrix::{HostForm, PROFILES, Root};
use super::verdict::{Check, ClientResult, Verdict};
use crate::sslmode::SslMode;

/// One client's results, judged.
#[derive(Debug)]
pub struct ClientReport<'a> {
    /// The client's run.
    pub run: &'a ClientRun,
    /// Its check against its expectations.
    pub check: Check,
    /// How many cases got each verdict.
    pub counts: BTreeMap<Verdict, usize>,
}

impl<'a> ClientReport<'a> {
    /// Judges a client's run.
    pub fn new(run: &'a ClientRun) -> Self {
        let check = run.expectations.check(&run.results);
        let mut counts = BTreeMap::new();
        for r in &run.results {
            *counts.entry(r.verdict).or_insert(0) += 1;
        }
        Self { run, check, counts }
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.counts.get(&verdict).copied().unwrap_or(0)
    }

    fn faults(&self) -> usize {
        Verdict::ALL
            .iter()
            .filter(|v| v.is_fault())
            .map(|v| self.count(*v))
            .sum()
    }

    fn name(&self) -> &str {
        &self.run.process.spec().name
    }

    /// The JSON of this client's part of the report.
    pub fn to_json(&self) -> Value {
        let spec = self.run.process.spec();
        json!({
            "name": spec.name,
            "driver": spec.driver,
            "command": spec.command,
            "expectations": self.run.expectations.path.as_ref().map(|p| p.display().to_string()),
            "counts": Verdict::ALL
                .iter()
                .map(|v| (v.as_str().to_owned(), json!(self.count(*v))))
                .collect::<serde_json::Map<_, _>>(),
            "passes": self.check.passes(),
            "problems": self.check.problems,
            "results": self.run.results.iter().zip(&self.check.expected).map(|(r, expected)| json!({
                "id": r.case.id(),
                "libpq": r.libpq.as_str(),
                "libpq_message": r.libpq_message,
                "outcome": r.shown(),
                "message": r.message,
                "verdict": r.verdict.as_str(),
                "expected": expected,
                "server_saw": {"tls": r.seen.tls, "plain": r.seen.plain},
                "note": r.note,
            })).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for ClientReport<'_> {
    /// The client's counts, one example per verdict other than agree, its notes and problems.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = self.run.process.spec();
        write!(f, "{}", spec.name)?;
        if let Some(driver) = &spec.driver {
            write!(f, " ({driver})")?;
        }
        writeln!(
            f,
            ": {} cases: {} agree, {} weaker, {} stricter, {} different, {} failed to answer; {}",
            self.run.results.len(),
            self.count(Verdict::Agree),
            self.count(Verdict::Weaker),
            self.count(Verdict::Stricter),
            self.count(Verdict::Different),
            self.faults(),
            if self.check.passes() {
                "passes"
            } else {
                "FAILS"
            }
        )?;
        for verdict in Verdict::ALL.iter().filter(|v| **v != Verdict::Agree) {
            if let Some(r) = self.run.results.iter().find(|r| r.verdict == *verdict) {
                writeln!(
                    f,
                    "  {:<11} {:>4}  e.g. {}: client {}; libpq {}",
                    verdict.as_str(),
                    self.count(*verdict),
                    r.case.id(),
                    r.client_text(),
                    r.libpq_text(true)
                )?;
            }
        }
        let notes: Vec<&ClientResult> = self
            .run
            .results
            .iter()
            .filter(|r| r.note.is_some() && r.verdict != Verdict::Unconfirmed)
            .collect();
        if let Some(first) = notes.first() {
            writeln!(
                f,
                "  note: {} case(s), e.g. {}: {}",
                notes.len(),
                first.case.id(),
                first.note.as_deref().unwrap_or_default()
            )?;
        }
        match &self.run.expectations.path {
            Some(path) => writeln!(
                f,
                "  expectations: {} ({} entries)",
                path.display(),
                self.run.expectations.deviations.len()
            )?,
            None => writeln!(f, "  expectations: none (every deviation counts)")?,
        }
        const SHOWN: usize = 15;
        for problem in self.check.problems.iter().take(SHOWN) {
            writeln!(f, "  ! {problem}")?;
        }
        if self.check.problems.len() > SHOWN {
            writeln!(
                f,
                "  ! ... and {} more (see --json)",
                self.check.problems.len() - SHOWN
            )?;
        }
        Ok(())
    }
}

/// The whole report of a client run.
#[derive(Debug)]
pub struct Report<'a> {
    /// The run's facts.
    pub info: &'a RunInfo,
    /// Each client, judged.
    pub clients: Vec<ClientReport<'a>>,
}

impl<'a> Report<'a> {
    /// Judges every client of a run.
    pub fn new(info: &'a RunInfo, runs: &'a [ClientRun]) -> Self {
        Self {
            info,
            clients: runs.iter().map(ClientReport::new).collect(),
        }
    }

    /// Whether every client passes and libpq gave its recorded outcome on every case.
    pub fn passes(&self) -> bool {
        self.info.drift.is_empty() && self.clients.iter().all(|c| c.check.passes())
    }

    /// The JSON report.
    pub fn to_json(&self) -> Value {
        json!({
            "libpq": self.info.libpq,
            "server": self.info.server,
            "launcher": self.info.launcher,
            "elapsed_s": self.info.elapsed.as_secs_f64(),
            "drift": self.info.drift.iter().map(|(id, live, recorded)| json!({
                "id": id, "libpq": live.as_str(), "recorded": recorded.map(Outcome::as_str),
            })).collect::<Vec<_>>(),
            "clients": self.clients.iter().map(ClientReport::to_json).collect::<Vec<_>>(),
        })
    }

    /// The static HTML report: a summary table, then per client a heat map (rows: server
    /// profile x sslmode; columns: root choice x host form), each cell coloured by verdict and
    /// showing the case on hover.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>tea-pgcloud: what PostgreSQL clients do with sslmode</title>\n<style>{CSS}</style></head><body>\n\
             <h1>What PostgreSQL clients do with <code>sslmode</code></h1>\n<p>Every case run through libpq \
             ({}) and each client on one PostgreSQL {} server ({} launcher), in {:.0} s. A cell is one \
             case: its text is the client's outcome; its colour the verdict against libpq. Hover a cell \
             for the case. A thick border marks a deviation that the client's expectations file does \
             not list.</p>\n",
            esc(&self.info.libpq),
            esc(&self.info.server),
            esc(&self.info.launcher),
            self.info.elapsed.as_secs_f64()
        );
        h.push_str("<div class=\"legend\">");
        for v in Verdict::ALL {
            let _ = write!(
                h,
                "<span class=\"cell {}\">{}</span> ",
                v.as_str(),
                v.as_str()
            );
        }
        h.push_str("</div>\n<table class=\"summary\"><tr><th>client</th><th>driver</th>");
        for v in [
            Verdict::Agree,
            Verdict::Weaker,
            Verdict::Stricter,
            Verdict::Different,
        ] {
            let _ = write!(h, "<th>{v}</th>");
        }
        h.push_str("<th>failed to answer</th><th>expectations</th></tr>\n");
        for c in &self.clients {
            let _ = write!(
                h,
                "<tr><td><a href=\"#{id}\">{name}</a></td><td>{driver}</td>",
                id = esc(&anchor(c.name())),
                name = esc(c.name()),
                driver = esc(c.run.process.spec().driver.as_deref().unwrap_or("-"))
            );
            for v in [
                Verdict::Agree,
                Verdict::Weaker,
                Verdict::Stricter,
                Verdict::Different,
            ] {
                let _ = write!(h, "<td class=\"n\">{}</td>", c.count(v));
            }
            let _ = writeln!(
                h,
                "<td class=\"n\">{}</td><td>{}</td></tr>",
                c.faults(),
                if c.check.passes() { "pass" } else { "FAIL" }
            );
        }
        h.push_str("</table>\n");
        for c in &self.clients {
            self.heat_map(&mut h, c);
        }
        h.push_str("</body></html>\n");
        h
    }

    fn heat_map(&self, h: &mut String, c: &ClientReport) {
        let _ = write!(
            h,
            "<h2 id=\"{}\">{}</h2>\n<p><code>{}</code></p>\n<table class=\"map\"><tr><th>profile</th><th>sslmode</th>",
            esc(&anchor(c.name())),
            esc(c.name()),
            esc(&c.run.process.spec().command)
        );
        for root in Root::ALL {
            for host in HostForm::ALL {
                let _ = write!(h, "<th>{}<br>{}</th>", root.as_str(), host.as_str());
            }
        }
        h.push_str("</tr>\n");
        for profile in PROFILES {
            for mode in SslMode::ALL {
                let mut row = String::new();
                let mut any = false;
                for root in Root::ALL {
                    for host in HostForm::ALL {
                        let found = c.run.results.iter().zip(&c.check.expected).find(|(r, _)| {
                            r.case.profile.name == profile.name
                                && r.case.sslmode == mode
                                && r.case.root == root
                                && r.case.host == host
                        });
                        let Some((r, expected)) = found else {
                            row.push_str("<td></td>");
                            continue;
                        };
                        any = true;
                        let unlisted = r.verdict != Verdict::Agree && !expected;
                        let title = format!(
                            "{}\nclient: {}\nlibpq: {}\nverdict: {}{}",
                            r.case.id(),
                            r.client_text(),
                            r.libpq_text(false),
                            r.verdict,
                            if unlisted {
                                " (not in the expectations file)"
                            } else {
                                ""
                            }
                        );
                        let _ = write!(
                            row,
                            "<td class=\"cell {}{}\" title=\"{}\">{}</td>",
                            r.verdict.as_str(),
                            if unlisted { " unlisted" } else { "" },
                            esc(&title),
                            r.shown()
                        );
                    }
                }
                if any {
                    let _ = writeln!(
                        h,
                        "<tr><th>{}</th><th>{}</th>{row}</tr>",
                        profile.name,
                        mode.as_str()
                    );
                }
            }
        }
        h.push_str("</table>\n");
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.clients {
            writeln!(f, "{c}")?;
        }
        writeln!(
            f,
            "{:<18} {:>6} {:>6} {:>8} {:>9} {:>6}  expectations",
            "client", "agree", "weaker", "stricter", "different", "other"
        )?;
        for c in &self.clients {
            writeln!(
                f,
                "{:<18} {:>6} {:>6} {:>8} {:>9} {:>6}  {}",
                c.name(),
                c.count(Verdict::Agree),
                c.count(Verdict::Weaker),
                c.count(Verdict::Stricter),
                c.count(Verdict::Different),
                c.faults(),
                if c.check.passes() { "pass" } else { "FAIL" }
            )?;
        }
        for (id, live, recorded) in &self.info.drift {
            writeln!(
                f,
                "RECORDING {id}: libpq now gives {live}, the recording says {}",
                recorded.map(Outcome::as_str).unwrap_or("nothing")
            )?;
        }
        writeln!(
            f,
            "\n{} client(s), {} pass ({}; server {}, {} launcher; {:.1} s)",
            self.clients.len(),
            self.clients.iter().filter(|c| c.check.passes()).count(),
            self.info.libpq,
            self.info.server,
            self.info.launcher,
            self.info.elapsed.as_secs_f64()
        )
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:2px 6px;font-size:12px}\
th{background:#f4f4f4;font-weight:600;text-align:left}td.n{text-align:right}\
.cell{text-align:center;min-width:5em;display:table-cell}.legend .cell{display:inline-block;padding:2px 8px;border:1px solid #ccc}\
.agree{background:#d8f0d8}.weaker{background:#e8574a;color:#fff}.stricter{background:#f6c453}\
.different{background:#a77bd1;color:#fff}.unconfirmed,.timeout,.exited,.bad-reply,.not-run{background:#444;color:#fff}\
td.unlisted{outline:3px solid #000;outline-offset:-3px}";

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::verdict::Expectations;
    use crate::conformance::verdict::tests::results;

    #[test]
    fn the_html_report_draws_one_cell_per_case_and_escapes_what_clients_say() {
        use crate::conformance::client::{ClientProcess, ClientSpec};
        let mut results = results(|c| {
            if c.profile.name == "tls-on" && c.sslmode == SslMode::Require {
                Verdict::Weaker
            } else {
                Verdict::Agree
            }
        });
        results[0].message = Some("<script>alert(\"x\")</script>".into());
        let spec = ClientSpec {
            name: "evil <b>".into(),
            driver: Some("d&d".into()),
            command: "true".into(),
            expectations: None,
        };
        let runs = vec![ClientRun {
            process: ClientProcess::new(spec, Vec::new()),
            expectations: Expectations::default(),
            results,
            timeout: std::time::Duration::from_secs(1),
        }];
        let info = RunInfo::default();
        let report = Report::new(&info, &runs);
        let html = report.to_html();
        assert!(!html.contains("<script>"), "a client's text is escaped");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)"));
        assert!(html.contains("evil &lt;b&gt;") && html.contains("d&amp;d"));
        // One cell with a verdict class per case, 8 of them weaker and unlisted.
        assert_eq!(
            html.matches("<td class=\"cell ").count(),
            PROFILES.len() * 48
        );
        assert_eq!(
            html.matches("<td class=\"cell weaker unlisted\"").count(),
            8
        );
        // A row per profile and sslmode, the map's header and the summary's.
        assert_eq!(html.matches("<tr><th>").count(), PROFILES.len() * 6 + 1 + 1);
        assert!(!report.passes());
        let text = report.to_string();
        assert!(text.contains("8 weaker"), "{text}");
        assert!(text.contains("e.g. tls-on/require/"), "{text}");
    }
}
