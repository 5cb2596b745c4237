//! The validate cases of the requests a server serves itself whatever it passes through:
//! names (MKDIR, RENAME and its flags, LINK, SYMLINK, MKNOD, UNLINK, RMDIR), attributes
//! (SETATTR), FALLOCATE and COPY_FILE_RANGE. Each is driven through the mount and its effect
//! checked in `{source}`, the server's backing directory, where it must be.
//!
//! The verdict is the UAPI's: a request the server acknowledges must have happened to its
//! backing file. A request it refuses (an errno: a mode its file system lacks, a flag it does
//! not take) is no failure, and is observed by name.

use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{FallocateFlags, RenameFlags, Timestamps, CWD};

use crate::framework::subject::Subject;
use crate::framework::{pattern, Ctx, Stop};
use crate::sys::errno_name;

/// `Ok` as "ok", an error by its errno's name: what an observation records.
fn outcome(r: rustix::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => errno_name(e),
    }
}

/// A request through the mount that the rest of the case needs: an error ends the case,
/// named with the request.
fn through<T>(what: &str, r: std::io::Result<T>) -> Result<T, Stop> {
    r.map_err(|e| {
        let errno = rustix::io::Errno::from_io_error(&e).map_or(e.to_string(), errno_name);
        Stop::Broken(format!("{what} through the mount: {errno}"))
    })
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// MKDIR, RENAME (plain, RENAME_NOREPLACE, RENAME_EXCHANGE), CREATE, LINK, SYMLINK and
/// READLINK, MKNOD, UNLINK, RMDIR.
pub fn names(ctx: &mut Ctx) -> Result<(), Stop> {
    let (a, c) = (pattern(400, 50_000), pattern(401, 30_000));
    let (fs, first) = ctx.io_file("a", &a)?;
    let src = first.parent().expect("a file in {source}").to_path_buf();
    let m = |p: &str| fs.path(p);

    through("MKDIR d", std::fs::create_dir(m("d")))?;
    ctx.require(
        src.join("d").is_dir(),
        "MKDIR d: no directory d in {source}",
    );

    through("RENAME a -> d/b", std::fs::rename(m("a"), m("d/b")))?;
    ctx.require(
        read(&src.join("d/b")).as_deref() == Some(&a[..]) && !src.join("a").exists(),
        "RENAME a -> d/b: {source} does not hold a's bytes at d/b alone",
    );

    through("CREATE c", std::fs::write(m("c"), &c))?;
    ctx.require(
        read(&src.join("c")).as_deref() == Some(&c[..]),
        "CREATE c and WRITE: {source}'s c differs",
    );

    // RENAME_NOREPLACE onto an existing name: EEXIST, or a refusal of the flag; never done.
    let noreplace = rustix::fs::renameat_with(CWD, m("c"), CWD, m("d/b"), RenameFlags::NOREPLACE);
    ctx.observe("rename_noreplace", outcome(noreplace));
    ctx.require(
        noreplace.is_err(),
        "RENAME_NOREPLACE c -> d/b was acknowledged over an existing name",
    );
    ctx.require(
        read(&src.join("d/b")).as_deref() == Some(&a[..])
            && read(&src.join("c")).as_deref() == Some(&c[..]),
        "RENAME_NOREPLACE c -> d/b: {source} no longer holds both files as they were",
    );

    // RENAME_EXCHANGE: both names stay, their files swapped (or the flag refused).
    let exchange = rustix::fs::renameat_with(CWD, m("c"), CWD, m("d/b"), RenameFlags::EXCHANGE);
    ctx.observe("rename_exchange", outcome(exchange));
    let (at_c, at_b) = match exchange {
        Ok(()) => (&a, &c),
        Err(_) => (&c, &a),
    };
    ctx.require(
        read(&src.join("c")).as_deref() == Some(&at_c[..])
            && read(&src.join("d/b")).as_deref() == Some(&at_b[..]),
        format!(
            "RENAME_EXCHANGE c <-> d/b ({}): {{source}} does not hold the files where the \
             answer says they are",
            outcome(exchange)
        ),
    );

    through("LINK c -> l", std::fs::hard_link(m("c"), m("l")))?;
    let same_inode = match (
        std::fs::metadata(src.join("c")),
        std::fs::metadata(src.join("l")),
    ) {
        (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
        _ => false,
    };
    ctx.require(same_inode, "LINK c -> l: l is not c's inode in {source}");

    through("SYMLINK s", std::os::unix::fs::symlink("d/b", m("s")))?;
    let target = std::path::PathBuf::from("d/b");
    ctx.require(
        std::fs::read_link(src.join("s")).ok() == Some(target.clone()),
        "SYMLINK s -> d/b: {source}'s s is no such link",
    );
    ctx.require(
        std::fs::read_link(m("s")).ok() == Some(target),
        "READLINK s through the mount is not d/b",
    );

    let fifo = rustix::fs::mknodat(
        CWD,
        m("p"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from(0o644),
        0,
    );
    ctx.observe("mknod_fifo", outcome(fifo));
    if fifo.is_ok() {
        ctx.require(
            std::fs::symlink_metadata(src.join("p")).is_ok_and(|x| x.file_type().is_fifo()),
            "MKNOD p (a FIFO): no FIFO p in {source}",
        );
        through("UNLINK p", std::fs::remove_file(m("p")))?;
    }

    // TMPFILE (an unnamed file in d), then LINK of it by its fd: a name in {source}.
    let bytes = pattern(402, 20_000);
    let tmp = rustix::fs::openat(
        CWD,
        m("d"),
        rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR,
        rustix::fs::Mode::from(0o600),
    );
    ctx.observe("tmpfile", outcome(tmp.as_ref().map(drop).map_err(|e| *e)));
    if let Ok(fd) = tmp {
        let file = File::from(fd);
        through("WRITE to the TMPFILE", file.write_all_at(&bytes, 0))?;
        let named = rustix::fs::linkat(&file, "", CWD, m("t"), rustix::fs::AtFlags::EMPTY_PATH);
        ctx.observe("tmpfile_link", outcome(named));
        drop(file);
        if named.is_ok() {
            ctx.require(
                read(&src.join("t")).as_deref() == Some(&bytes[..]),
                "TMPFILE in d, written, then LINK to t: {source}'s t differs",
            );
            through("UNLINK t", std::fs::remove_file(m("t")))?;
        }
    }

    through("UNLINK l", std::fs::remove_file(m("l")))?;
    through("UNLINK s", std::fs::remove_file(m("s")))?;
    ctx.require(
        !src.join("l").exists() && std::fs::symlink_metadata(src.join("s")).is_err(),
        "UNLINK l and s: still in {source}",
    );
    through("UNLINK d/b", std::fs::remove_file(m("d/b")))?;
    through("RMDIR d", std::fs::remove_dir(m("d")))?;
    ctx.require(!src.join("d").exists(), "RMDIR d: still in {source}");
    Ok(())
}

/// SETATTR: mode, times (a file's, and a symlink's own), owner; and OPEN with O_TRUNC.
pub fn attributes(ctx: &mut Ctx) -> Result<(), Stop> {
    let (fs, file) = ctx.io_file("f", &pattern(410, 10_000))?;
    let m = fs.path("f");

    for mode in [0o640, 0o604] {
        through(
            &format!("SETATTR mode {mode:o}"),
            std::fs::set_permissions(&m, std::fs::Permissions::from_mode(mode)),
        )?;
        let got = std::fs::metadata(&file)?.mode() & 0o7777;
        ctx.require(
            got == mode,
            format!("SETATTR mode {mode:o}: {{source}}'s file has mode {got:o}"),
        );
    }

    let at = |s: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: at(1_000_000_000),
        last_modification: at(1_100_000_000),
    };
    // A server may refuse to set times it was given (libfuse 3.14's passthrough_hp built
    // without utimensat answers EOPNOTSUPP): observed.
    let set = rustix::fs::utimensat(CWD, &m, &times, rustix::fs::AtFlags::empty());
    ctx.observe("utimens", outcome(set));
    if set.is_ok() {
        let got = std::fs::metadata(&file)?;
        ctx.require(
            got.atime() == 1_000_000_000 && got.mtime() == 1_100_000_000,
            format!(
                "SETATTR atime and mtime: {{source}}'s file has {} and {}",
                got.atime(),
                got.mtime()
            ),
        );
    }

    // A symlink's own times (AT_SYMLINK_NOFOLLOW): the link changes, never its target.
    through(
        "SYMLINK l -> f",
        std::os::unix::fs::symlink("f", fs.path("l")),
    )?;
    let link_times = Timestamps {
        last_access: at(1_200_000_000),
        last_modification: at(1_300_000_000),
    };
    let target_before = std::fs::metadata(&file)?.mtime();
    let set = rustix::fs::utimensat(
        CWD,
        fs.path("l"),
        &link_times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
    ctx.observe("utimens_symlink", outcome(set));
    if set.is_ok() {
        let link = std::fs::symlink_metadata(file.with_file_name("l"))?.mtime();
        let target = std::fs::metadata(&file)?.mtime();
        ctx.require(
            link == 1_300_000_000 && target == target_before,
            format!(
                "SETATTR mtime of symlink l (AT_SYMLINK_NOFOLLOW): in {{source}} the link has \
                 {link} and its target {target} (was {target_before})"
            ),
        );
    }

    // OPEN with O_TRUNC (or the SETATTR the kernel sends for it without atomic_o_trunc).
    drop(through(
        "OPEN with O_TRUNC",
        File::options().write(true).truncate(true).open(&m),
    )?);
    let size = std::fs::metadata(&file)?.len();
    ctx.require(
        size == 0,
        format!("OPEN with O_TRUNC: {{source}}'s file still has {size} bytes"),
    );

    // A server that runs without the right to chown may refuse it: observed.
    let owner = std::os::unix::fs::chown(&m, Some(1), Some(1));
    ctx.observe(
        "chown",
        match &owner {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                errno_name(rustix::io::Errno::from_io_error(e).unwrap_or(rustix::io::Errno::IO))
            }
        },
    );
    if owner.is_ok() {
        let got = std::fs::metadata(&file)?;
        ctx.require(
            (got.uid(), got.gid()) == (1, 1),
            format!(
                "SETATTR uid and gid 1: {{source}}'s file is {}:{}",
                got.uid(),
                got.gid()
            ),
        );
    }
    Ok(())
}

/// A directory's entries as getdents64 gives them, `.` and `..` included: name and type.
fn listing(dir: &Path) -> std::io::Result<Vec<(String, rustix::fs::FileType)>> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut entries = rustix::fs::Dir::read_from(&fd)?;
    let mut out = Vec::new();
    while let Some(e) = entries.read() {
        let e = e?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.file_type()));
    }
    Ok(out)
}

/// What a listing through the mount lacks of `{source}`'s, and lists beyond it, both
/// sorted; then the names it lists twice.
fn listing_diff(
    want: &[(String, rustix::fs::FileType)],
    got: &[(String, rustix::fs::FileType)],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    use std::collections::BTreeSet;
    let names = |l: &[(String, rustix::fs::FileType)]| -> BTreeSet<String> {
        l.iter().map(|(n, _)| n.clone()).collect()
    };
    let (w, g) = (names(want), names(got));
    let mut seen = BTreeSet::new();
    let twice = got
        .iter()
        .filter(|(n, _)| !seen.insert(n.clone()))
        .map(|(n, _)| n.clone())
        .collect();
    (
        w.difference(&g).cloned().collect(),
        g.difference(&w).cloned().collect(),
        twice,
    )
}

/// Up to three names and how many more, for a reason.
fn some_names(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(&format!(" and {} more", names.len() - 3));
    }
    s
}

/// READDIR (or READDIRPLUS, as the kernel chooses): a directory of 300 files with long
/// names (several replies, each continued from the last one's offset), a subdirectory, a
/// symlink and a FIFO, listed through the mount; then one name made and one removed through
/// the mount, and the directory listed again.
pub fn readdir(ctx: &mut Ctx) -> Result<(), Stop> {
    let files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("entry-{i:04}-{}", "n".repeat(40)), pattern(440, 64)))
        .collect();
    let (fs, source) = ctx.io_files(&files)?;
    std::fs::create_dir(source.join("sub"))?;
    std::os::unix::fs::symlink(&files[0].0, source.join("link"))?;
    rustix::fs::mknodat(
        CWD,
        source.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from(0o644),
        0,
    )?;
    let root = fs.path("");
    for round in ["", " after CREATE new and UNLINK entry-0001"] {
        if !round.is_empty() {
            through("CREATE new", std::fs::write(fs.path("new"), b"new"))?;
            through(
                "UNLINK entry-0001",
                std::fs::remove_file(fs.path(&files[1].0)),
            )?;
        }
        let want = listing(&source)?;
        let got = through("READDIR", listing(&root))?;
        ctx.observe(
            &format!("entries{}", if round.is_empty() { "" } else { "_after" }),
            got.len(),
        );
        let (lacks, beyond, twice) = listing_diff(&want, &got);
        ctx.require(
            lacks.is_empty(),
            format!(
                "READDIR through the mount{round} lacks {} of {{source}}'s names: {}",
                lacks.len(),
                some_names(&lacks)
            ),
        );
        ctx.require(
            beyond.is_empty(),
            format!(
                "READDIR through the mount{round} lists {} names {{source}} has not: {}",
                beyond.len(),
                some_names(&beyond)
            ),
        );
        ctx.require(
            twice.is_empty(),
            format!(
                "READDIR through the mount{round} lists twice: {}",
                some_names(&twice)
            ),
        );
        // A type the server does not know (DT_UNKNOWN) is allowed; a wrong one is not.
        let wrong: Vec<String> = got
            .iter()
            .filter(|(n, t)| {
                *t != rustix::fs::FileType::Unknown
                    && want.iter().any(|(wn, wt)| wn == n && wt != t)
            })
            .map(|(n, t)| format!("{n} ({t:?})"))
            .collect();
        ctx.require(
            wrong.is_empty(),
            format!(
                "READDIR through the mount{round} gives the wrong type to {}",
                some_names(&wrong)
            ),
        );
    }
    Ok(())
}

/// A static x86-64 program of 132 bytes that exits with status 42: an ELF header, one
/// loadable segment, and `mov edi, 42; mov eax, 60 (exit); syscall`.
fn exit_42() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    let code: &[u8] = &[
        0xbf, 42, 0, 0, 0, // mov edi, 42
        0xb8, 60, 0, 0, 0, // mov eax, 60
        0x0f, 0x05, // syscall
    ];
    let size = (64 + 56 + code.len()) as u64;
    let mut elf = Vec::with_capacity(size as usize);
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + 64 + 56).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // read, execute
    elf.extend_from_slice(&0u64.to_le_bytes());
    for word in [BASE, BASE, size, size, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(code);
    elf
}

/// Run `path` and say how it ended: "exit 42", or the errno of the exec.
fn run(path: &Path) -> String {
    match std::process::Command::new(path).status() {
        Ok(s) => s
            .code()
            .map_or_else(|| format!("{s}"), |c| format!("exit {c}")),
        Err(e) => rustix::io::Errno::from_io_error(&e).map_or(e.to_string(), errno_name),
    }
}

/// OPEN for execution (the kernel adds `__FMODE_EXEC` to its flags): a program in
/// `{source}` run through the mount, then one written through the mount and made executable
/// there (SETATTR mode) and run.
pub fn exec(ctx: &mut Ctx) -> Result<(), Stop> {
    if !cfg!(target_arch = "x86_64") {
        return Err(Stop::Skip("the program it runs is x86-64 code".into()));
    }
    let prog = exit_42();
    let (fs, file) = ctx.io_file("prog", &prog)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))?;
    let ran = run(&fs.path("prog"));
    ctx.observe("exec", &ran);
    ctx.require(
        ran == "exit 42",
        format!("exec of {{source}}'s program through the mount: {ran}, not exit 42"),
    );
    through("CREATE made", std::fs::write(fs.path("made"), &prog))?;
    through(
        "SETATTR mode 755",
        std::fs::set_permissions(fs.path("made"), std::fs::Permissions::from_mode(0o755)),
    )?;
    let ran = run(&fs.path("made"));
    ctx.observe("exec_written", &ran);
    ctx.require(
        ran == "exit 42",
        format!("exec of a program written through the mount: {ran}, not exit 42"),
    );
    Ok(())
}

const KIB: u64 = 1024;

/// FALLOCATE: allocation past the end (the size grows), KEEP_SIZE (it does not), PUNCH_HOLE
/// and ZERO_RANGE (zeros in {source} and through the mount, the bytes around untouched).
pub fn fallocate(ctx: &mut Ctx) -> Result<(), Stop> {
    let data = pattern(420, (256 * KIB) as usize);
    let (fs, file) = ctx.io_file("f", &data)?;
    let f = File::options().read(true).write(true).open(fs.path("f"))?;
    let size = || std::fs::metadata(&file).map(|x| x.len()).unwrap_or(0);

    let grow = rustix::fs::fallocate(&f, FallocateFlags::empty(), 256 * KIB, 64 * KIB);
    ctx.observe("fallocate", outcome(grow));
    if grow.is_ok() {
        ctx.require(
            size() == 320 * KIB,
            format!(
                "FALLOCATE to 320 KiB: {{source}}'s file is {} bytes",
                size()
            ),
        );
    }
    let before = size();
    let keep = rustix::fs::fallocate(&f, FallocateFlags::KEEP_SIZE, before, 64 * KIB);
    ctx.observe("fallocate_keep_size", outcome(keep));
    if keep.is_ok() {
        ctx.require(
            size() == before,
            format!(
                "FALLOCATE KEEP_SIZE: {{source}}'s file grew from {before} to {}",
                size()
            ),
        );
    }

    let mut want = data.clone();
    want.resize(before as usize, 0);
    for (name, flags, at) in [
        (
            "PUNCH_HOLE",
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            64 * KIB,
        ),
        ("ZERO_RANGE", FallocateFlags::ZERO_RANGE, 160 * KIB),
    ] {
        let done = rustix::fs::fallocate(&f, flags, at, 32 * KIB);
        ctx.observe(&format!("fallocate_{}", name.to_lowercase()), outcome(done));
        if done.is_err() {
            continue;
        }
        want[at as usize..(at + 32 * KIB) as usize].fill(0);
        let on_disk = read(&file).unwrap_or_default();
        ctx.require(
            on_disk == want,
            format!(
                "FALLOCATE {name} at {} KiB: {{source}}'s file is not zeros there alone",
                at / KIB
            ),
        );
        let mut back = vec![0xffu8; (32 * KIB) as usize];
        f.read_exact_at(&mut back, at)?;
        ctx.require(
            back.iter().all(|b| *b == 0),
            format!(
                "FALLOCATE {name} at {} KiB: not zeros read through the mount",
                at / KIB
            ),
        );
    }
    ctx.expect_bypassed(&*fs);
    Ok(())
}

/// COPY_FILE_RANGE between two files of the mount, at offsets inside both.
pub fn copy_file_range(ctx: &mut Ctx) -> Result<(), Stop> {
    let (from, to) = (pattern(430, 200_000), pattern(431, 200_000));
    let files = [
        ("in".to_string(), from.clone()),
        ("out".to_string(), to.clone()),
    ];
    let (fs, source) = ctx.io_files(&files)?;
    let fin = File::open(fs.path("in"))?;
    let fout = File::options()
        .read(true)
        .write(true)
        .open(fs.path("out"))?;
    let (mut off_in, mut off_out, len) = (10_000u64, 50_000u64, 80_000usize);
    let mut left = len;
    while left > 0 {
        let n =
            rustix::fs::copy_file_range(&fin, Some(&mut off_in), &fout, Some(&mut off_out), left)
                .map_err(std::io::Error::from)?;
        if n == 0 {
            break;
        }
        left -= n;
    }
    let copied = copied_by(&*fs);
    ctx.observe(proto::observation::COPY_FILE_RANGE_REQUESTS, copied);
    let mut want = to.clone();
    want[50_000..130_000].copy_from_slice(&from[10_000..90_000]);
    drop((fin, fout));
    let on_disk = read(&source.join("out")).unwrap_or_default();
    let at = on_disk.iter().zip(&want).position(|(a, b)| a != b);
    ctx.require(
        on_disk == want,
        format!(
            "COPY_FILE_RANGE of in[10000..90000] to out at 50000: {{source}}'s out differs{}",
            at.map_or(String::new(), |i| format!(" at offset {i}"))
        ),
    );
    let back = std::fs::read(fs.path("out"))?;
    ctx.require(
        back == want,
        "COPY_FILE_RANGE: out read through the mount differs",
    );
    Ok(())
}

/// COPY_FILE_RANGE requests the server got (either opcode), where the kernel counts them.
fn copied_by(fs: &dyn Subject) -> Option<u64> {
    use crate::fuse::abi::op;
    let one = fs.requests(op::COPY_FILE_RANGE)?;
    Some(one + fs.requests(op::COPY_FILE_RANGE_64).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    /// docs/validation.md: a row per opcode the kernel sends, every case it names a validate
    /// case of the catalog, and no request that changes data, size or names checked by none.
    #[test]
    fn validation_statement_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/validation.md");
        let doc = std::fs::read_to_string(path).expect("docs/validation.md");
        let catalog: Vec<&str> = crate::cases::catalog().iter().map(|c| c.name).collect();
        let mut requests = Vec::new();
        let mut unchecked = Vec::new();
        for line in doc.lines().filter(|l| l.starts_with("| ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, request, changes, _, checked, _] = cells[..] else {
                panic!("a row of four cells: {line}");
            };
            if request == "request" {
                continue;
            }
            requests.push(request.to_string());
            for name in checked.split('`').skip(1).step_by(2) {
                assert!(
                    catalog.contains(&name) && name.starts_with("validate."),
                    "{request}: {name} is no validate case"
                );
            }
            if changes == "yes" && checked.starts_with("none") {
                unchecked.push(request);
            }
        }
        assert!(
            unchecked.is_empty(),
            "changes data, size or names, checked by none: {unchecked:?}"
        );
        for op in 1..=64 {
            let name = crate::fuse::abi::opcode_name(op);
            if !name.starts_with("OP_") {
                assert!(
                    requests.contains(&name),
                    "{name} has no row in docs/validation.md"
                );
            }
        }
    }
}
