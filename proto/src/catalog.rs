//! What the agent says about its cases, and which of them a run takes by default. The agent
//! owns the catalog; the host reads it from `fpt-agent list --json`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One case as the agent describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInfo {
    /// `group.name`, unique; what `--case` takes.
    pub name: String,
    /// The rule under test, as the UAPI or the kernel states it.
    pub rule: String,
    /// What makes the verdict pass.
    pub verdict_rule: String,
    /// The agent kills the case (and reports a crash) after this many seconds.
    pub timeout_secs: u64,
    /// May take the kernel down: never in a default run, never on the host.
    pub kills_kernel: bool,
    /// Runs against the server under test (`cargo xtask validate`), not the agent's own.
    #[serde(default)]
    pub external_server: bool,
    /// Reads the host's root shared over virtio-fs (`/host`): a QEMU run that selects it
    /// starts virtiofsd.
    #[serde(default)]
    pub uses_host_share: bool,
    /// Waits on a kernel timer of its own (tens of seconds): left out of a run that names
    /// no case; a name or a pattern takes it.
    #[serde(default)]
    pub slow: bool,
}

impl CaseInfo {
    /// The group is the name's first part: `init.offer` is in `init`.
    pub fn group(&self) -> &str {
        group_of(&self.name)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// The group of cases that measure (`bench.throughput`): their observations are figures,
/// which no snapshot keeps.
pub const MEASUREMENTS: &str = "bench";

/// The workloads `bench.throughput` measures, in the order it runs them and the host shows
/// them: (name, unit).
pub const THROUGHPUT_WORKLOADS: [(&str, &str); 6] = [
    ("seq_read", "MiB/s"),
    ("seq_write", "MiB/s"),
    ("rand_read", "ops/s"),
    ("rand_write", "ops/s"),
    ("mmap_read", "MiB/s"),
    ("small_files", "ops/s"),
];

/// `init` of `init.offer`.
pub fn group_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(g, _)| g)
}

/// Whether a run that names no case takes this one: every case that cannot take the kernel
/// down, needs no server from outside and is not slow. The one place this rule is written.
pub fn in_default_run(kills_kernel: bool, external_server: bool, slow: bool) -> bool {
    !kills_kernel && !external_server && !slow
}

/// The cases `cargo xtask validate` runs: every one that tests the server under test, but
/// the slow ones (the throughput measurement), which run when named.
pub fn in_validate_run(external_server: bool, slow: bool) -> bool {
    external_server && !slow
}

/// Whether a `--case` pattern (`uring.*`) takes a case it matches: any but one that may take
/// the kernel down, which must be named. Host and agent expand patterns with this rule.
pub fn pattern_takes(kills_kernel: bool) -> bool {
    !kills_kernel
}

/// `*` matches any run of characters (dots included): `uring.*`, `*.mmap_*`.
pub fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (head.len()..=name.len())
                    .any(|i| name.is_char_boundary(i) && glob(tail, &name[i..]))
        }
    }
}

/// What selection needs to know of a case: the host's [`CaseInfo`] and the agent's own
/// case type both have it, so both sides select with [`select`].
pub trait Selectable {
    /// `group.name`.
    fn name(&self) -> &str;
    /// May take the kernel down.
    fn kills_kernel(&self) -> bool;
    /// Runs against the server under test.
    fn external_server(&self) -> bool;
    /// Waits on a kernel timer: left out unless named or matched.
    fn slow(&self) -> bool;
}

impl Selectable for CaseInfo {
    fn name(&self) -> &str {
        &self.name
    }
    fn kills_kernel(&self) -> bool {
        self.kills_kernel
    }
    fn external_server(&self) -> bool {
        self.external_server
    }
    fn slow(&self) -> bool {
        self.slow
    }
}

/// Why a `--case` list could not be turned into cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unselectable {
    /// No case has this name.
    Unknown(String),
    /// This pattern matches no case a pattern may take.
    NoMatch(String),
}

impl std::fmt::Display for Unselectable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unselectable::Unknown(n) => write!(f, "unknown case {n}"),
            Unselectable::NoMatch(p) => write!(f, "no case matches {p}"),
        }
    }
}

/// `--case none`: no case at all. A boot that starts the agent, says hello and powers off:
/// the floor `cargo xtask bench` holds every loop to.
pub const NONE: &str = "none";

/// The one selection rule, the host's and the agent's. [`NONE`] alone: nothing. No names:
/// the default run
/// ([`in_default_run`], or [`in_validate_run`] when `validating`). Otherwise each name is a
/// case, and each pattern (`*`) adds every case it matches that a pattern may take
/// ([`pattern_takes`]; a server-under-test case only when `validating`), in catalog order,
/// each case once; a name that is no case, or a pattern that matches none, is an error.
pub fn select<'a, C: Selectable>(
    catalog: &'a [C],
    names: &[&str],
    validating: bool,
) -> Result<Vec<&'a C>, Unselectable> {
    if names == [NONE] {
        return Ok(Vec::new());
    }
    if names.is_empty() {
        return Ok(catalog
            .iter()
            .filter(|c| match validating {
                true => in_validate_run(c.external_server(), c.slow()),
                false => in_default_run(c.kills_kernel(), c.external_server(), c.slow()),
            })
            .collect());
    }
    let mut picked: Vec<&C> = Vec::new();
    let mut take = |c: &'a C| {
        if !picked.iter().any(|p| p.name() == c.name()) {
            picked.push(c);
        }
    };
    for n in names {
        if n.contains('*') {
            let matching: Vec<&C> = catalog
                .iter()
                .filter(|c| glob(n, c.name()) && pattern_takes(c.kills_kernel()))
                .filter(|c| validating || !c.external_server())
                .collect();
            if matching.is_empty() {
                return Err(Unselectable::NoMatch(n.to_string()));
            }
            matching.into_iter().for_each(&mut take);
        } else {
            let case = catalog
                .iter()
                .find(|c| c.name() == *n)
                .ok_or_else(|| Unselectable::Unknown(n.to_string()))?;
            take(case);
        }
    }
    Ok(picked)
}

/// Longest list of names `fpt.cases=` carries (the kernel command line holds 2048 bytes on
/// x86, with everything else on it); a longer one travels as a bitmap.
pub const MAX_LISTED: usize = 1024;

/// The first character of `fpt.cases=` as a bitmap over the catalog.
const BITMAP: char = '@';

/// The value of the `fpt.cases=` parameter for `names` (in catalog order or not): `all` when
/// they are exactly the default selection of `catalog`, `none` for no name at all, else the
/// names, with every group taken whole written `group.*`. Names in catalog order whose list
/// is still longer than [`MAX_LISTED`] (the cases coverage picks for one line can be a
/// hundred, from every group) become a bitmap over the catalog, `@` and a hex digit per four
/// cases, which [`param_names`] reads back with the same catalog.
pub fn cases_param(names: &[&str], catalog: &[CaseInfo]) -> String {
    let listed = cases_listed(names, catalog);
    if listed.len() <= MAX_LISTED {
        return listed;
    }
    let at: Vec<Option<usize>> = names
        .iter()
        .map(|n| catalog.iter().position(|c| c.name == *n))
        .collect();
    if at.iter().any(Option::is_none) || !at.windows(2).all(|w| w[0] < w[1]) {
        return listed;
    }
    let mut digits = vec![0u8; catalog.len().div_ceil(4)];
    for i in at.into_iter().flatten() {
        digits[i / 4] |= 1 << (i % 4);
    }
    let hex: String = digits
        .iter()
        .map(|d| char::from_digit(u32::from(*d), 16).expect("a nibble"))
        .collect();
    format!("{BITMAP}{hex}")
}

/// The case names an `fpt.cases=` value gives to [`select`]: none for `all` (the default
/// run), the bitmap's cases in catalog order, or the list. A bitmap made for a catalog of
/// another length is refused: the host and the agent would not mean the same cases.
pub fn param_names<'a, C: Selectable>(
    param: &'a str,
    catalog: &'a [C],
) -> Result<Vec<&'a str>, String> {
    let Some(hex) = param.strip_prefix(BITMAP) else {
        return Ok(match param {
            "all" => Vec::new(),
            _ => param.split(',').filter(|n| !n.is_empty()).collect(),
        });
    };
    if hex.len() != catalog.len().div_ceil(4) {
        return Err(format!(
            "the case bitmap has {} digits, for another catalog than this one of {} cases",
            hex.len(),
            catalog.len()
        ));
    }
    let mut names = Vec::new();
    for (k, ch) in hex.chars().enumerate() {
        let d = ch
            .to_digit(16)
            .ok_or_else(|| format!("the case bitmap has {ch:?}, not a hex digit"))?;
        for bit in 0..4 {
            if d & (1 << bit) != 0 {
                let c = catalog
                    .get(4 * k + bit)
                    .ok_or_else(|| "the case bitmap names a case past the catalog".to_string())?;
                names.push(c.name());
            }
        }
    }
    Ok(names)
}

fn cases_listed(names: &[&str], catalog: &[CaseInfo]) -> String {
    if names.is_empty() {
        return NONE.into();
    }
    let default: Vec<&str> = catalog
        .iter()
        .filter(|c| in_default_run(c.kills_kernel, c.external_server, c.slow))
        .map(|c| c.name.as_str())
        .collect();
    if names == default.as_slice() {
        return "all".into();
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < names.len() {
        let group = group_of(names[i]);
        let whole: Vec<&str> = catalog
            .iter()
            .filter(|c| c.group() == group && pattern_takes(c.kills_kernel))
            .map(|c| c.name.as_str())
            .collect();
        if !whole.is_empty() && names[i..].starts_with(&whole) {
            out.push(format!("{group}.*"));
            i += whole.len();
        } else {
            out.push(names[i].to_string());
            i += 1;
        }
    }
    out.join(",")
}

/// Every `count`-th item of a list, from the `index`-th (1-based): a CI runner's shard of a
/// selection (`--shard 2/4`), or one boot's share of a run over several VMs. Dealt
/// round-robin in order, so each share gets some of every group (the slow stacking and
/// fault cases do not all land in one), and the shares of one list partition it. The host
/// and the agent deal the same way (the agent reads the deals from `fpt.deal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deal {
    /// Which share, from 1.
    pub index: u32,
    /// How many shares in all.
    pub count: u32,
}

impl Deal {
    /// "2/4" -> share 2 of 4.
    pub fn parse(s: &str) -> Result<Deal, String> {
        let bad = || format!("shard {s}: give I/N with 1 <= I <= N, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Deal { index, count })
    }

    /// This share of `items`.
    pub fn take<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (*i as u32) % self.count == self.index - 1)
            .map(|(_, c)| c)
            .collect()
    }
}

impl std::fmt::Display for Deal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The Markdown table of docs/cases.md.
pub fn markdown(catalog: &[CaseInfo]) -> String {
    let mut out = String::from(
        "# Cases\n\nGenerated by `cargo xtask cases --markdown`; do not edit by hand.\n\n\
         | case | group | rule | verdict rule |\n|---|---|---|---|\n",
    );
    for c in catalog {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.name,
            c.group(),
            one_line(&c.rule),
            one_line(&c.verdict_rule)
        ));
    }
    out
}

/// The statement of coverage that ends docs/cases.md: for every rule of
/// docs/kernel-facts.md (`facts`, its Markdown), the cases that check it, then the rules no
/// case checks with a verdict yet, so that a gap is visible instead of silent.
///
/// A rule's cases are read from the last cell of its table row: backticked case names,
/// `.name` continuing the group of the name before it, globs (`ids.open_reply_*`,
/// `stacking.*_depth_1`), and "the `io` group". A row whose cell names no case of the
/// catalog, or says the rule is only recorded, is a gap.
pub fn coverage(catalog: &[CaseInfo], facts: &str) -> String {
    let mut out = String::from(
        "\n## Coverage of docs/kernel-facts.md\n\n\
         Generated from the rule tables of docs/kernel-facts.md: each rule and the cases \
         whose verdict checks it.\n",
    );
    let mut gaps: Vec<(String, String, String)> = Vec::new();
    let mut section = String::new();
    let mut header_done = false;
    for line in facts.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.to_string();
            header_done = false;
            continue;
        }
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = row
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() < 2 || cells[0].starts_with("---") || cells[0] == "rule" || cells[0] == "bug"
        {
            continue;
        }
        let (rule, cell) = (cells[0], cells[cells.len() - 1]);
        let cases = cases_named(catalog, cell);
        let recorded = format!("{rule} {cell}").to_lowercase().contains("recorded");
        if !header_done {
            out.push_str(&format!(
                "\n### {section}\n\n| rule | checked by |\n|---|---|\n"
            ));
            header_done = true;
        }
        let by = if cases.is_empty() || recorded {
            gaps.push((section.clone(), rule.to_string(), cell.to_string()));
            "no verdict yet".to_string()
        } else {
            cases
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!("| {rule} | {by} |\n"));
    }
    out.push_str("\n### Rules no case checks yet\n\n");
    if gaps.is_empty() {
        out.push_str("None.\n");
    }
    for (section, rule, cell) in gaps {
        out.push_str(&format!(
            "- {section}: {rule} (kernel-facts.md says: {cell})\n"
        ));
    }
    out
}

/// The coverage table of docs/uapi-7.46.md (`uapi`, its Markdown): each INIT flag, FOPEN
/// flag, notification, ioctl and io_uring command of the protocol, with the cases that
/// check it or "none"; first a count of how many are checked. An error names a case the
/// file cites that the catalog does not have.
pub fn uapi_coverage(catalog: &[CaseInfo], uapi: &str) -> Result<String, String> {
    let mut body = String::new();
    let (mut named, mut checked) = (0, 0);
    for line in uapi.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            body.push_str(&format!(
                "\n### {title}\n\n| name | protocol | checked by |\n|---|---|---|\n"
            ));
            continue;
        }
        let Some(row) = line.strip_prefix("| ") else {
            continue;
        };
        let cells: Vec<&str> = row.trim_end_matches(" |").split(" | ").collect();
        if cells.len() != 3 || cells[0] == "name" || cells[0].starts_with("---") {
            continue;
        }
        let cited: Vec<&str> = cells[2].split('`').skip(1).step_by(2).collect();
        for c in &cited {
            if !catalog.iter().any(|k| k.name == *c) {
                return Err(format!(
                    "docs/uapi-7.46.md: {} cites `{c}`, which is no case",
                    cells[0]
                ));
            }
        }
        named += 1;
        if !cited.is_empty() {
            checked += 1;
        }
        body.push_str(&format!("| {} | {} | {} |\n", cells[0], cells[1], cells[2]));
    }
    Ok(format!(
        "\n## Coverage of the 7.46 UAPI\n\nGenerated from docs/uapi-7.46.md (Linux 7.3's \
         include/uapi/linux/fuse.h): {checked} of its {named} names are checked by a case; \
         every other one says none.\n{body}"
    ))
}

/// The catalog's cases a kernel-facts.md cell names (see [`coverage`]).
fn cases_named(catalog: &[CaseInfo], cell: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut group = String::new();
    let mut add = |name: &str| {
        if !found.iter().any(|f| f == name) {
            found.push(name.to_string());
        }
    };
    let words: Vec<&str> = cell.split('`').collect();
    // Every odd piece was between backticks.
    for (i, word) in words.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let before = words[i - 1];
        let after = words.get(i + 1).copied().unwrap_or("");
        if before.trim_end().ends_with("the") && after.trim_start().starts_with("group") {
            for c in catalog.iter().filter(|c| c.group() == *word) {
                add(&c.name);
            }
            continue;
        }
        let name = match word.strip_prefix('.') {
            Some(rest) if !group.is_empty() => format!("{group}.{rest}"),
            _ => word.to_string(),
        };
        if let Some((g, _)) = name.split_once('.') {
            group = g.to_string();
        }
        for c in catalog.iter().filter(|c| glob(&name, &c.name)) {
            add(&c.name);
        }
    }
    found
}

/// Words of `s` on one line (rules are written across lines in the source).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deals_partition_a_list() {
        let all: Vec<u32> = (0..7).collect();
        let mut seen: Vec<u32> = (1..=3)
            .flat_map(|index| Deal { index, count: 3 }.take(all.clone()))
            .collect();
        seen.sort();
        assert_eq!(seen, all);
        assert_eq!(Deal { index: 2, count: 3 }.take(all), [1, 4]);
        assert_eq!(Deal::parse("2/3"), Ok(Deal { index: 2, count: 3 }));
        assert_eq!(Deal { index: 2, count: 3 }.to_string(), "2/3");
        assert!(Deal::parse("0/3").is_err());
        assert!(Deal::parse("4/3").is_err());
        assert!(Deal::parse("x").is_err());
    }

    #[test]
    fn coverage_names_the_cases_of_each_rule_and_the_gaps() {
        let catalog: Vec<CaseInfo> = [
            "ids.open_reply_zero",
            "ids.open_reply_negative",
            "ids.close_zero",
            "backing_open.directory",
            "backing_open.fifo",
            "io.round_trip",
            "io.aio",
        ]
        .iter()
        .map(|n| CaseInfo {
            name: n.to_string(),
            ..Default::default()
        })
        .collect();
        let facts = "## Ids\n\n| rule | since | case |\n|---|---|---|\n\
            | replies with bad ids give EIO | 6.9 | `ids.open_reply_*` |\n\
            | only regular files | 6.17 | `backing_open.directory`, `.fifo` |\n\
            | bypass | 6.9 | the `io` group |\n\
            | a race | - | `ids.close_zero` (recorded) |\n\
            | nothing yet | 6.14 | - |\n";
        let text = coverage(&catalog, facts);
        assert!(
            text.contains("| replies with bad ids give EIO | `ids.open_reply_zero`, `ids.open_reply_negative` |"),
            "{text}"
        );
        assert!(
            text.contains("| only regular files | `backing_open.directory`, `backing_open.fifo` |")
        );
        assert!(text.contains("| bypass | `io.round_trip`, `io.aio` |"));
        assert!(text.contains("- Ids: a race (kernel-facts.md says: `ids.close_zero` (recorded))"));
        assert!(text.contains("- Ids: nothing yet (kernel-facts.md says: -)"));
    }

    fn info(name: &str, kills_kernel: bool) -> CaseInfo {
        CaseInfo {
            name: name.into(),
            rule: "r".into(),
            verdict_rule: "v".into(),
            timeout_secs: 10,
            kills_kernel,
            external_server: false,
            uses_host_share: false,
            slow: false,
        }
    }

    #[test]
    fn the_default_selection_travels_as_all() {
        let catalog = [info("a.x", false), info("a.y", true), info("b.z", false)];
        assert_eq!(cases_param(&["a.x", "b.z"], &catalog), "all");
        assert_eq!(cases_param(&["b.z"], &catalog), "b.*");
        assert_eq!(cases_param(&["a.x", "a.y", "b.z"], &catalog), "a.*,a.y,b.*");
        assert_eq!(catalog[2].group(), "b");
        let mut slow = info("b.s", false);
        slow.slow = true;
        let catalog = [info("a.x", false), info("b.z", false), slow];
        assert_eq!(cases_param(&["a.x", "b.z"], &catalog), "all");
        assert_eq!(cases_param(&["a.x", "b.z", "b.s"], &catalog), "a.*,b.*");
        assert_eq!(cases_param(&["b.z", "b.s", "a.x"], &catalog), "b.*,a.*");
        assert_eq!(cases_param(&["b.s"], &catalog), "b.s");
        // No case: `none`, which selects nothing (not "" , which the agent reads as all).
        assert_eq!(cases_param(&[], &catalog), NONE);
        assert!(select(&catalog, &[NONE], false).unwrap().is_empty());
    }

    #[test]
    fn a_long_selection_in_catalog_order_travels_as_a_bitmap() {
        // 150 cases in 3 groups of 50; every other one of them: no group whole.
        let catalog: Vec<CaseInfo> = (0..150)
            .map(|i| info(&format!("group{}.a_long_case_name_{i:03}", i / 50), false))
            .collect();
        let picked: Vec<&str> = catalog.iter().step_by(2).map(|c| c.name.as_str()).collect();
        let param = cases_param(&picked, &catalog);
        assert_eq!(param.len(), 1 + 150usize.div_ceil(4), "{param}");
        assert!(param.starts_with("@55"), "{param}");
        assert_eq!(param_names(&param, &catalog).unwrap(), picked);
        // Out of catalog order: the list, whatever its length (the order is the caller's).
        let mut reversed = picked.clone();
        reversed.reverse();
        assert!(cases_param(&reversed, &catalog).contains(','));
        // Short lists stay names; `all` and lists read back as before.
        assert_eq!(cases_param(&picked[..2], &catalog), picked[..2].join(","));
        assert!(param_names("all", &catalog).unwrap().is_empty());
        assert_eq!(param_names("a.x,b.y", &catalog).unwrap(), ["a.x", "b.y"]);
        // Another catalog: refused, never a wrong selection.
        assert!(param_names(&param, &catalog[..100])
            .unwrap_err()
            .contains("another catalog"));
        assert!(param_names("@zz", &catalog[..8]).is_err());
    }

    #[test]
    fn the_uapi_table_counts_what_a_case_checks_and_refuses_a_case_that_is_none() {
        let catalog = [info("a.x", false)];
        let md = "## Flags\n\n| name | protocol | checked by |\n|---|---|---|\n\
                  | FUSE_A | 7.1 | `a.x` |\n| FUSE_B | 7.2 | none |\n";
        let out = uapi_coverage(&catalog, md).unwrap();
        assert!(out.contains("1 of its 2 names"), "{out}");
        assert!(out.contains("| FUSE_B | 7.2 | none |"), "{out}");
        let wrong = md.replace("`a.x`", "`a.y`");
        assert!(uapi_coverage(&catalog, &wrong)
            .unwrap_err()
            .contains("`a.y`"));
    }

    #[test]
    fn one_selection_rule_for_host_and_agent() {
        let mut external = info("v.served", false);
        external.external_server = true;
        let mut slow = info("a.slow", false);
        slow.slow = true;
        let catalog = [info("a.x", false), info("a.down", true), slow, external];
        let names = |picked: Vec<&CaseInfo>| -> Vec<String> {
            picked.iter().map(|c| c.name.clone()).collect()
        };
        assert_eq!(names(select(&catalog, &[], false).unwrap()), ["a.x"]);
        assert_eq!(names(select(&catalog, &[], true).unwrap()), ["v.served"]);
        // A pattern takes slow cases, never one that may take the kernel down.
        assert_eq!(
            names(select(&catalog, &["a.*"], false).unwrap()),
            ["a.x", "a.slow"]
        );
        assert_eq!(
            names(select(&catalog, &["a.down"], false).unwrap()),
            ["a.down"]
        );
        // Server-under-test cases only when validating.
        assert_eq!(
            select(&catalog, &["v.*"], false).unwrap_err(),
            Unselectable::NoMatch("v.*".into())
        );
        assert_eq!(
            names(select(&catalog, &["v.*"], true).unwrap()),
            ["v.served"]
        );
        // Each case once; a pattern that adds nothing new is not an error.
        assert_eq!(
            names(select(&catalog, &["a.x", "a.*", "a.x"], false).unwrap()),
            ["a.x", "a.slow"]
        );
        assert_eq!(
            select(&catalog, &["a.x", "nope"], false)
                .unwrap_err()
                .to_string(),
            "unknown case nope"
        );
    }

    #[test]
    fn patterns_match_any_run_of_characters() {
        assert!(glob("uring.*", "uring.io.mmap_shared"));
        assert!(glob("*.mmap_*", "uring.io.mmap_shared"));
        assert!(glob("io.*_round_trip", "io.passthrough_round_trip"));
        assert!(!glob("io.*", "uring.io.x"));
        assert!(glob("*", "a"));
        assert!(glob("a*", "a"));
        assert!(!glob("a", "ab"));
    }
}
