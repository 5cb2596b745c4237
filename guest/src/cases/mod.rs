//! The catalog: one module per group of cases, in the order a full run takes them, and the
//! selection of a run's cases from it. What a case is and how it runs is [`crate::framework`].

mod backing_open;
mod bench;
mod faults;
mod ids;
mod init;
mod io;
mod lifetime;
mod notify;
mod open_reply;
pub mod privilege;
mod regression;
mod selftest;
mod stacking;
mod uring;
mod validate;
mod validate_requests;

use proto::CaseInfo;

use crate::framework::Case;

/// Every case, in the order a full run takes them.
pub fn catalog() -> &'static [Case] {
    static CATALOG: std::sync::OnceLock<Vec<Case>> = std::sync::OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut all = Vec::new();
        all.extend(init::cases());
        all.extend(privilege::cases());
        all.extend(backing_open::cases());
        all.extend(ids::cases());
        all.extend(open_reply::cases());
        all.extend(stacking::cases());
        all.extend(lifetime::cases());
        all.extend(notify::cases());
        all.extend(io::cases());
        all.extend(regression::cases());
        all.extend(faults::cases());
        let over_ring = uring::cases(&all);
        all.extend(over_ring);
        all.extend(bench::cases());
        all.extend(selftest::cases());
        all.extend(validate::cases());
        all
    })
}

pub fn find(name: &str) -> Option<&'static Case> {
    catalog().iter().find(|c| c.name == name)
}

/// The catalog as the host reads it.
pub fn infos() -> Vec<CaseInfo> {
    catalog().iter().map(Case::info).collect()
}

/// "all" (every case a default run takes) or a comma-separated list of names and patterns
/// (`uring.*`: see [`proto::catalog::pattern_takes`]).
pub fn select(list: &str) -> Result<Vec<&'static Case>, String> {
    let names = proto::catalog::param_names(list, catalog())?;
    proto::catalog::select(catalog(), &names, validating()).map_err(|e| e.to_string())
}

/// Whether this run has a server under test (its spec is in the environment or the image):
/// then a pattern may take the cases that run against it.
fn validating() -> bool {
    std::env::var_os(proto::validate::SPEC_ENV).is_some()
        || std::path::Path::new(proto::validate::GUEST_SPEC).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::pattern;
    use std::path::Path;

    #[test]
    fn case_names_are_unique_and_grouped() {
        let mut names: Vec<_> = catalog().iter().map(|c| c.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate case names");
        for c in catalog() {
            assert!(
                c.name.contains('.') && !c.group().is_empty(),
                "{} has no group",
                c.name
            );
            assert!(
                !c.name.contains(','),
                "{}: commas separate names on the command line",
                c.name
            );
            assert!(
                !c.rule.is_empty() && !c.verdict_rule.is_empty(),
                "{}: a rule and a verdict rule",
                c.name
            );
            assert_ne!(c.rule, c.verdict_rule, "{}", c.name);
        }
    }

    #[test]
    fn selects_cases_by_name() {
        assert!(select("all").unwrap().iter().all(|c| !c.kills_kernel));
        assert!(!select("selftest.panic").unwrap().is_empty());
        assert_eq!(select("init.offer").unwrap()[0].name, "init.offer");
        let ring = select("uring.*").unwrap();
        assert!(ring.len() > 3 && ring.iter().all(|c| c.group() == "uring"));
        assert!(
            select("selftest.*").is_err(),
            "selftests are named one by one"
        );
        assert!(select("nothing.*").is_err());
        assert!(select("init.offer,nope").unwrap_err().contains("nope"));
    }

    #[test]
    fn docs_cases_md_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cases.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let facts = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kernel-facts.md"),
        )
        .unwrap_or_default();
        let uapi = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/uapi-7.46.md"),
        )
        .unwrap_or_default();
        let uapi = proto::catalog::uapi_coverage(&infos(), &uapi).unwrap_or_else(|e| panic!("{e}"));
        let want = proto::catalog::markdown(&infos())
            + &proto::catalog::coverage(&infos(), &facts)
            + &uapi;
        assert!(
            on_disk == want,
            "docs/cases.md is stale: run `cargo xtask cases --markdown > docs/cases.md`"
        );
    }

    #[test]
    fn patterns_differ_by_seed() {
        assert_ne!(pattern(1, 64), pattern(2, 64));
        assert_eq!(pattern(7, 64), pattern(7, 64));
        assert_eq!(pattern(7, 13).len(), 13);
        assert_eq!(pattern(7, 13)[..], pattern(7, 64)[..13]);
    }
}
