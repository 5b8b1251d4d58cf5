//! Outcomes of the same cases through this crate and libpq, compared and recorded.

/// Outcomes of the same cases through this crate and libpq, and where they differ.
#[derive(Default)]
pub struct Agreement {
    pub cases: usize,
    seen: std::collections::BTreeMap<String, usize>,
    disagreements: Vec<String>,
    /// Case name -> libpq's outcome, for the recording.
    libpq: std::collections::BTreeMap<String, String>,
}

/// Where each group's libpq outcomes are recorded (`GROUP.json`), like the TLS matrix's.
pub const RECORDINGS: &str = "fixtures/conformance/libpq-options";

impl Agreement {
    pub fn record(&mut self, case: &str, ours: String, libpq: String) {
        self.cases += 1;
        *self.seen.entry(libpq.clone()).or_default() += 1;
        assert!(
            self.libpq.insert(case.to_string(), libpq.clone()).is_none(),
            "case names are unique: {case}"
        );
        if ours != libpq {
            self.disagreements
                .push(format!("{case}: ours {ours}, libpq {libpq}"));
        }
    }

    /// [`Agreement::assert_all_agree`], then libpq's outcomes against the recording of
    /// `group` (`fixtures/conformance/libpq-options/GROUP.json`): a libpq whose answers changed
    /// fails here. `TEA_RECORD_LIBPQ_OPTIONS=1` rewrites the recording instead.
    pub fn assert_all_agree_and_recorded(&self, group: &str, about: &str, outcomes: &[&str]) {
        use tea_pgcloud::conformance::matrix::Recording;
        self.assert_all_agree(outcomes);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(RECORDINGS)
            .join(format!("{group}.json"));
        let version = tea_pgcloud::conformance::oracle::libpq_version().expect("psql --version");
        if std::env::var_os("TEA_RECORD_LIBPQ_OPTIONS").is_some() {
            let mut description = serde_json::Map::new();
            description.insert("about".into(), about.into());
            Recording {
                libpq: version,
                cases: self.libpq.clone(),
                description,
            }
            .save(&path)
            .expect("the recording is written");
            return;
        }
        let recorded = Recording::load(&path).expect("the recording reads");
        assert_eq!(
            recorded.cases.keys().collect::<Vec<_>>(),
            self.libpq.keys().collect::<Vec<_>>(),
            "{}: the recorded cases are not the test's (run with TEA_RECORD_LIBPQ_OPTIONS=1)",
            path.display()
        );
        for (case, live) in &self.libpq {
            assert_eq!(
                recorded.cases.get(case),
                Some(live),
                "{case}: libpq ({version}) now gives {live}; {} recorded {} with {}",
                path.display(),
                recorded.cases.get(case).map_or("nothing", String::as_str),
                recorded.libpq
            );
        }
    }

    /// Every case agreed, and libpq gave each of `outcomes` at least once (so agreeing is not
    /// a coincidence of one outcome).
    pub fn assert_all_agree(&self, outcomes: &[&str]) {
        for outcome in outcomes {
            assert!(
                self.seen.contains_key(*outcome),
                "no case gave {outcome}: {:?}",
                self.seen
            );
        }
        println!("libpq's outcomes: {:?}", self.seen);
        assert!(
            self.disagreements.is_empty(),
            "{} of {} cases disagree with libpq:\n{}",
            self.disagreements.len(),
            self.cases,
            self.disagreements.join("\n")
        );
    }
}
