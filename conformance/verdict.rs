//! Verdicts of the client protocol (`conformance/clients/PROTOCOL.md`): each case's client
//! outcome against libpq's, the per-client expectations files, and the reports (a terminal
//! summary, JSON, and a static HTML page with one heat map per client).

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Outcome;
use super::matrix::{Case, PROFILES, cases};
use super::protocol::{Claim, Fault, Reply, Seen, confirms};

/// How a client's result on one case compares with libpq's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The same outcome as libpq (`tls`, `plain`, or both refused).
    Agree,
    /// Connected where libpq refused.
    Weaker,
    /// Refused where libpq connected.
    Stricter,
    /// TLS where libpq used plain text, or the reverse.
    Different,
    /// Claimed a connection the server did not see (or saw with the other encryption).
    Unconfirmed,
    /// No reply in time.
    Timeout,
    /// The client ended before replying.
    Exited,
    /// The reply broke the protocol.
    BadReply,
    /// Not run: the client could not be started or was given up.
    NotRun,
}

impl Verdict {
    /// Every verdict, in report order.
    pub const ALL: [Verdict; 9] = [
        Self::Agree,
        Self::Weaker,
        Self::Stricter,
        Self::Different,
        Self::Unconfirmed,
        Self::Timeout,
        Self::Exited,
        Self::BadReply,
        Self::NotRun,
    ];

    /// `agree`, `weaker`, `stricter`, `different`, `unconfirmed`, `timeout`, `exited`,
    /// `bad-reply`, `not-run`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agree => "agree",
            Self::Weaker => "weaker",
            Self::Stricter => "stricter",
            Self::Different => "different",
            Self::Unconfirmed => "unconfirmed",
            Self::Timeout => "timeout",
            Self::Exited => "exited",
            Self::BadReply => "bad-reply",
            Self::NotRun => "not-run",
        }
    }

    /// Parses what [`Verdict::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// A deviation an expectations file may list: weaker, stricter or different.
    pub fn is_deviation(self) -> bool {
        matches!(self, Self::Weaker | Self::Stricter | Self::Different)
    }

    /// A failure of the client or of its claim, never expected: the last five.
    pub fn is_fault(self) -> bool {
        !self.is_deviation() && self != Self::Agree
    }

    /// The verdict of a client's claim against libpq's.
    pub fn of(client: Claim, libpq: Claim) -> Self {
        match (client, libpq) {
            (a, b) if a == b => Self::Agree,
            (Claim::Tls | Claim::Plain, Claim::Fail) => Self::Weaker,
            (Claim::Fail, Claim::Tls | Claim::Plain) => Self::Stricter,
            _ => Self::Different,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One client's result on one case.
#[derive(Debug, Clone)]
pub struct ClientResult {
    /// The case.
    pub case: Case,
    /// libpq's outcome in this run.
    pub libpq: Outcome,
    /// libpq's message when it failed.
    pub libpq_message: Option<String>,
    /// What the client claimed, when it replied.
    pub claim: Option<Claim>,
    /// The client's message, or what went wrong with its reply.
    pub message: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// What the server logged under the case's `application_name`.
    pub seen: Seen,
    /// A remark: a `fail` claim for which the server logged a connection.
    pub note: Option<String>,
}

impl ClientResult {
    /// Judges a client's answer on `case`.
    pub fn judge(
        case: Case,
        libpq: Outcome,
        libpq_message: Option<String>,
        answer: Result<Reply, Fault>,
        seen: Seen,
    ) -> Self {
        let mut result = Self {
            case,
            libpq,
            libpq_message,
            claim: None,
            message: None,
            verdict: Verdict::NotRun,
            seen,
            note: None,
        };
        match answer {
            Err(fault) => {
                result.verdict = match fault {
                    Fault::Timeout(_) => Verdict::Timeout,
                    Fault::Exited(_) => Verdict::Exited,
                    Fault::BadReply(_) => Verdict::BadReply,
                    // A client that could not be started runs no case.
                    Fault::NoStart(_) | Fault::NotRun => Verdict::NotRun,
                };
                result.message = Some(fault.to_string());
            }
            Ok(reply) => {
                result.claim = Some(reply.claim);
                result.message = reply.message;
                if confirms(seen, reply.claim) {
                    result.verdict = Verdict::of(reply.claim, Claim::of(libpq));
                } else {
                    result.verdict = Verdict::Unconfirmed;
                    let logged = match (seen.tls, seen.plain) {
                        (false, false) => "no authorized connection",
                        (true, _) => "only a TLS connection",
                        (false, true) => "only a plain connection",
                    };
                    result.note = Some(format!(
                        "claimed {} but the server logged {logged} under the case's \
                         application_name",
                        reply.claim
                    ));
                }
                if reply.claim == Claim::Fail && (seen.tls || seen.plain) {
                    result.note = Some(format!(
                        "claimed fail, but the server logged an authorized {} connection",
                        if seen.tls { "TLS" } else { "plain" }
                    ));
                }
            }
        }
        result
    }

    /// The client's outcome with its message: `fail (message)`.
    pub fn client_text(&self) -> String {
        with_message(self.shown(), self.message.as_deref())
    }

    /// libpq's outcome with its message; only the last line (the attempt that made libpq give
    /// up) when `last_line`.
    pub fn libpq_text(&self, last_line: bool) -> String {
        let message = self.libpq_message.as_deref().map(|m| {
            if last_line {
                m.lines().last().unwrap_or(m)
            } else {
                m
            }
        });
        with_message(self.libpq.as_str(), message)
    }

    /// The client's outcome as shown: `tls`, `plain`, `fail`, or the fault.
    pub fn shown(&self) -> &'static str {
        match self.claim {
            Some(claim) if self.verdict != Verdict::Unconfirmed => claim.as_str(),
            Some(_) => "unconfirmed",
            None => self.verdict.as_str(),
        }
    }
}

fn with_message(outcome: &str, message: Option<&str>) -> String {
    match message {
        Some(m) => format!("{outcome} ({m})"),
        None => outcome.to_owned(),
    }
}

/// Whether `id` matches `pattern`: the same number of `/`-separated parts, each matching, `*`
/// standing for any text within a part.
pub fn pattern_matches(pattern: &str, id: &str) -> bool {
    let (p, i): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), id.split('/').collect());
    p.len() == i.len()
        && p.iter()
            .zip(&i)
            .all(|(p, i)| crate::vectors::matching::glob(p, i, |_| true))
}

/// One entry of an expectations file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// `weaker`, `stricter` or `different`.
    pub verdict: Verdict,
    /// Case ids or patterns.
    pub cases: Vec<String>,
    /// Why the client behaves so.
    pub reason: String,
}

/// A client's expectations file: its known deviations from libpq.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Where it was read from.
    pub path: Option<PathBuf>,
    /// The `client` line (informative).
    pub client: Option<String>,
    /// The deviations.
    pub deviations: Vec<Deviation>,
}

/// How a client's results stand against its expectations.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// What is false: new deviations, deviations that disappeared, faults.
    pub problems: Vec<String>,
    /// Per result (in order): whether an expectation lists its deviation.
    pub expected: Vec<bool>,
}

impl Check {
    /// Whether the client passes.
    pub fn passes(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Expectations {
    /// Reads an expectations file (YAML, see PROTOCOL.md); every error names the file and key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = super::protocol::read_small(path)?;
        let shown = path.display().to_string();
        let node = crate::yaml::parse(&text, &shown).map_err(|e| e.to_string())?;
        Self::from_json(&node.to_json(), &shown).map(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// An expectations file's content, already as JSON; `file` names it in errors.
    pub fn from_json(value: &Value, file: &str) -> Result<Self, String> {
        let Some(root) = value.as_object() else {
            return Err(format!("{file}: expected a mapping"));
        };
        for key in root.keys() {
            if !matches!(key.as_str(), "client" | "deviations") {
                return Err(format!(
                    "{file}: {key}: unknown key (expected client, deviations)"
                ));
            }
        }
        let client = root
            .get("client")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut deviations = Vec::new();
        let list = match root.get("deviations") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(format!("{file}: deviations: expected a list")),
        };
        for (n, entry) in list.iter().enumerate() {
            let at = format!("{file}: deviations[{n}]");
            let Some(entry) = entry.as_object() else {
                return Err(format!("{at}: expected a mapping"));
            };
            for key in entry.keys() {
                if !matches!(key.as_str(), "verdict" | "cases" | "reason") {
                    return Err(format!(
                        "{at}.{key}: unknown key (expected verdict, cases, reason)"
                    ));
                }
            }
            let verdict = entry
                .get("verdict")
                .and_then(Value::as_str)
                .and_then(Verdict::parse)
                .filter(|v| v.is_deviation())
                .ok_or_else(|| format!("{at}.verdict: expected weaker, stricter or different"))?;
            let cases: Vec<String> = match entry.get("cases") {
                Some(Value::String(one)) => vec![one.clone()],
                Some(Value::Array(many)) => many
                    .iter()
                    .map(|c| {
                        c.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{at}.cases: expected strings"))
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(format!("{at}.cases: expected a case id or a list of them")),
            };
            if cases.is_empty() {
                return Err(format!("{at}.cases: empty"));
            }
            let reason = entry
                .get("reason")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if reason.is_empty() || reason.contains("TODO") {
                return Err(format!(
                    "{at}.reason: every deviation needs its reason (not empty, no TODO)"
                ));
            }
            deviations.push(Deviation {
                verdict,
                cases,
                reason: reason.to_owned(),
            });
        }
        Ok(Self {
            path: None,
            client,
            deviations,
        })
    }

    /// Checks `results` against these expectations (see PROTOCOL.md): every deviation listed
    /// with its verdict, every listed case having that verdict, no fault.
    pub fn check(&self, results: &[ClientResult]) -> Check {
        let mut check = Check {
            problems: Vec::new(),
            expected: vec![false; results.len()],
        };
        for entry in &self.deviations {
            for pattern in &entry.cases {
                let mut matched = 0;
                for (n, r) in results.iter().enumerate() {
                    let id = r.case.id();
                    if !pattern_matches(pattern, &id) {
                        continue;
                    }
                    matched += 1;
                    if r.verdict == entry.verdict {
                        check.expected[n] = true;
                    } else if !r.verdict.is_fault() {
                        check.problems.push(format!(
                            "{id}: listed as {} ({pattern}) but is {} now (client {}, libpq {})",
                            entry.verdict,
                            r.verdict,
                            r.shown(),
                            r.libpq
                        ));
                    }
                }
                // A run of some cases (--cases) need not reach every pattern; a pattern that
                // matches no case of the matrix at all is a mistake.
                if matched == 0
                    && !PROFILES
                        .iter()
                        .flat_map(cases)
                        .any(|c| pattern_matches(pattern, &c.id()))
                {
                    check
                        .problems
                        .push(format!("pattern {pattern:?} matches no case of the matrix"));
                }
            }
        }
        for (n, r) in results.iter().enumerate() {
            let id = r.case.id();
            if r.verdict.is_fault() {
                check.problems.push(format!(
                    "{id}: {}: {}",
                    r.verdict,
                    r.note.as_deref().or(r.message.as_deref()).unwrap_or("-")
                ));
            } else if r.verdict.is_deviation() && !check.expected[n] {
                check.problems.push(format!(
                    "{id}: new deviation, {}: client {}, libpq {}",
                    r.verdict,
                    r.client_text(),
                    r.libpq
                ));
            }
        }
        check
    }
}

/// The tightest patterns that hold on `results` for the cases with `verdict`: each case id,
/// with parts widened to `*` (host form, root, profile, sslmode, in that order) as long as every
/// case the pattern then matches has that verdict.
pub fn patterns_for(results: &[ClientResult], verdict: Verdict) -> Vec<String> {
    let ids: Vec<(Vec<String>, Verdict)> = results
        .iter()
        .map(|r| {
            (
                r.case.id().split('/').map(str::to_owned).collect(),
                r.verdict,
            )
        })
        .collect();
    let holds = |pattern: &[String]| {
        ids.iter().all(|(id, v)| {
            *v == verdict
                || id.len() != pattern.len()
                || !pattern.iter().zip(id).all(|(p, i)| p == "*" || p == i)
        })
    };
    let mut patterns: Vec<Vec<String>> = Vec::new();
    for (id, v) in &ids {
        if *v != verdict
            || patterns
                .iter()
                .any(|p| p.iter().zip(id).all(|(p, i)| p == "*" || p == i))
        {
            continue;
        }
        let mut pattern = id.clone();
        for part in [3, 2, 0, 1] {
            if part < pattern.len() {
                let kept = std::mem::replace(&mut pattern[part], "*".to_owned());
                if !holds(&pattern) {
                    pattern[part] = kept;
                }
            }
        }
        patterns.push(pattern);
    }
    let mut out: Vec<String> = patterns.into_iter().map(|p| p.join("/")).collect();
    out.sort();
    out.dedup();
    out
}

/// A starting point for a client's expectations file: its deviations in this run, one entry
/// per verdict, with `reason: TODO` for the author to replace.
pub fn draft(name: &str, results: &[ClientResult]) -> String {
    let mut out = format!(
        "# Deviations of {name} from libpq, as seen in one run. Split the entries by cause and\n\
         # write each reason; a file with TODO reasons is refused.\nclient: {name}\ndeviations:\n"
    );
    let mut any = false;
    for verdict in [Verdict::Weaker, Verdict::Stricter, Verdict::Different] {
        let patterns = patterns_for(results, verdict);
        if patterns.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(out, "  - verdict: {verdict}\n    cases:");
        for p in patterns {
            let _ = writeln!(out, "      - \"{p}\"");
        }
        out.push_str("    reason: TODO\n");
    }
    if !any {
        out = format!(
            "# {name} agrees with libpq on every case of this run.\nclient: {name}\ndeviations: []\n"
        );
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::conformance::matrix::{HostForm, Root};
    use crate::sslmode::SslMode;

    #[test]
    fn verdicts_follow_the_issue_table() {
        use Claim::*;
        assert_eq!(Verdict::of(Tls, Tls), Verdict::Agree);
        assert_eq!(Verdict::of(Fail, Fail), Verdict::Agree);
        assert_eq!(Verdict::of(Tls, Fail), Verdict::Weaker);
        assert_eq!(Verdict::of(Plain, Fail), Verdict::Weaker);
        assert_eq!(Verdict::of(Fail, Plain), Verdict::Stricter);
        assert_eq!(Verdict::of(Plain, Tls), Verdict::Different);
        assert_eq!(Verdict::of(Tls, Plain), Verdict::Different);
    }

    #[test]
    fn patterns_match_within_parts() {
        assert!(pattern_matches(
            "tls-on/*/right-ca/*",
            "tls-on/require/right-ca/ip"
        ));
        assert!(pattern_matches(
            "intermediate-*/require/*/ip",
            "intermediate-chain/require/no-root/ip"
        ));
        assert!(!pattern_matches("*", "tls-on/require/right-ca/ip"));
        assert!(!pattern_matches(
            "tls-on/*/right-ca",
            "tls-on/require/right-ca/ip"
        ));
        assert!(!pattern_matches(
            "tls-*/require/*/*",
            "hostssl-only/require/x/ip"
        ));
    }

    pub(crate) fn results(verdict_of: impl Fn(&Case) -> Verdict) -> Vec<ClientResult> {
        PROFILES
            .iter()
            .flat_map(cases)
            .map(|case| ClientResult {
                case,
                libpq: Outcome::Tls,
                libpq_message: None,
                claim: Some(Claim::Tls),
                message: None,
                verdict: verdict_of(&case),
                seen: Seen::default(),
                note: None,
            })
            .collect()
    }

    fn expect(verdict: &str, cases: &[&str]) -> Expectations {
        let value =
            json!({"deviations": [{"verdict": verdict, "cases": cases, "reason": "because"}]});
        Expectations::from_json(&value, "e.yaml").expect("valid")
    }

    #[test]
    fn expectations_must_be_true_both_ways() {
        let weak_require = |c: &Case| {
            if c.sslmode == SslMode::Require && c.root == Root::Right {
                Verdict::Weaker
            } else {
                Verdict::Agree
            }
        };
        let run = results(weak_require);
        assert!(
            expect("weaker", &["*/require/right-ca/*"])
                .check(&run)
                .passes()
        );
        // Unlisted: a new deviation.
        let none = Expectations::default().check(&run);
        let profiles = PROFILES.len();
        assert_eq!(none.problems.len(), profiles * 2, "{:?}", none.problems);
        // Listed too widely: the agreeing cases make the entry false.
        let wide = expect("weaker", &["*/require/*/*"]).check(&run);
        assert_eq!(
            wide.problems.len(),
            profiles * 6,
            "{:?}",
            wide.problems.first()
        );
        // The deviation disappeared: the entry is now false.
        let gone = expect("weaker", &["*/require/right-ca/*"]).check(&results(|_| Verdict::Agree));
        assert_eq!(gone.problems.len(), profiles * 2);
        // The wrong verdict.
        assert!(
            !expect("stricter", &["*/require/right-ca/*"])
                .check(&run)
                .passes()
        );
        // A pattern that matches nothing.
        let nothing = expect("weaker", &["*/require/right-ca/*", "no-such/*/*/*"]).check(&run);
        assert_eq!(nothing.problems.len(), 1, "{:?}", nothing.problems);
    }

    #[test]
    fn faults_are_never_expected() {
        let run = results(|c| {
            if c.profile.name == "tls-on" && c.sslmode == SslMode::Disable {
                Verdict::Unconfirmed
            } else {
                Verdict::Agree
            }
        });
        let check = Expectations::default().check(&run);
        assert_eq!(check.problems.len(), 8);
        let bad = json!({"deviations": [{"verdict": "unconfirmed", "cases": ["*/*/*/*"], "reason": "x"}]});
        assert!(Expectations::from_json(&bad, "e.yaml").is_err());
    }

    #[test]
    fn an_expectations_file_names_what_is_wrong() {
        let todo =
            json!({"deviations": [{"verdict": "weaker", "cases": ["a/b/c/d"], "reason": "TODO"}]});
        let err = Expectations::from_json(&todo, "e.yaml").expect_err("an error");
        assert!(err.contains("deviations[0].reason"), "{err}");
        let unknown = json!({"deviation": []});
        assert!(
            Expectations::from_json(&unknown, "e.yaml")
                .expect_err("an error")
                .contains("deviation: unknown key")
        );
        let verdict =
            json!({"deviations": [{"verdict": "worse", "cases": "a/b/c/d", "reason": "x"}]});
        assert!(
            Expectations::from_json(&verdict, "e.yaml")
                .expect_err("an error")
                .contains("deviations[0].verdict")
        );
    }

    #[test]
    fn drafted_patterns_are_tight_and_true() {
        let verdict_of = |c: &Case| {
            if c.sslmode == SslMode::Require
                && c.root != Root::None
                && c.profile.cert.is_some()
                && c.profile.name != "wildcard"
            {
                Verdict::Weaker
            } else if c.profile.name == "wildcard" && c.host == HostForm::Name {
                Verdict::Stricter
            } else {
                Verdict::Agree
            }
        };
        let run = results(verdict_of);
        let weaker = patterns_for(&run, Verdict::Weaker);
        // tls-off has no certificate, wildcard deviates otherwise: neither profile widens.
        assert!(
            weaker.contains(&"tls-on/require/right-ca/*".to_owned()),
            "{weaker:?}"
        );
        // Three roots for each profile with a certificate but wildcard.
        assert_eq!(weaker.len(), (PROFILES.len() - 2) * 3, "{weaker:?}");
        assert!(!weaker.iter().any(|p| p.starts_with("*/")), "{weaker:?}");
        let stricter = patterns_for(&run, Verdict::Stricter);
        assert_eq!(stricter, vec!["wildcard/*/*/name".to_owned()]);
        let value = json!({"deviations": [
            {"verdict": "weaker", "cases": weaker, "reason": "r"},
            {"verdict": "stricter", "cases": stricter, "reason": "r"},
        ]});
        let check = Expectations::from_json(&value, "e.yaml")
            .expect("valid")
            .check(&run);
        assert!(check.passes(), "{:?}", check.problems);
        let text = draft("x", &run);
        assert!(text.contains("reason: TODO"), "{text}");
        let parsed = crate::yaml::parse(&text, "draft.yaml")
            .expect("valid")
            .to_json();
        assert!(
            Expectations::from_json(&parsed, "draft.yaml").is_err(),
            "TODO is refused"
        );
    }
}
