//! `cases`: the catalog as the built agent reports it.

use crate::fail::fail;

/// The catalog, as the built agent reports it.
pub(crate) fn cases(markdown: bool) -> i32 {
    let catalog = match harness::boot::agent::build_with_catalog() {
        Ok((_, c)) => c,
        Err(e) => return fail(&e),
    };
    if markdown {
        let facts_path = harness::env::cache::workspace_root().join("docs/kernel-facts.md");
        let facts = match std::fs::read_to_string(&facts_path) {
            Ok(f) => f,
            Err(e) => return fail(&harness::Error::io(facts_path.display(), e)),
        };
        let uapi_path = harness::env::cache::workspace_root().join("docs/uapi-7.46.md");
        let uapi = match std::fs::read_to_string(&uapi_path) {
            Ok(f) => f,
            Err(e) => return fail(&harness::Error::io(uapi_path.display(), e)),
        };
        let uapi = match proto::catalog::uapi_coverage(&catalog, &uapi) {
            Ok(u) => u,
            // The name the file cites (docs/uapi-7.46.md names the row).
            Err(why) => return fail(&harness::Error::UnknownCase(why)),
        };
        print!("{}", proto::catalog::markdown(&catalog));
        print!("{}", proto::catalog::coverage(&catalog, &facts));
        print!("{uapi}");
        return 0;
    }
    for c in &catalog {
        let one_line = proto::catalog::one_line;
        println!(
            "{}\n  rule: {}\n  verdict: {}\n  timeout: {} s",
            c.name,
            one_line(&c.rule),
            one_line(&c.verdict_rule),
            c.timeout_secs
        );
    }
    0
}
