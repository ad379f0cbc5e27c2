//! The runtime store: read-only copies of the host's runtimes under the service's data dir.
//!
//! A bind mount shows its source path in `/proc/self/mountinfo`, so binding
//! `/root/.pyenv/versions/3.11.7` would tell every program where the host keeps its home. The
//! store instead materialises each runtime once as a tree of hard links (a copy where links
//! are impossible) at `<store>/<name>-<key>`, and boxes bind that. An entry holds only what
//! the language file's `include` patterns name (`*` matches within one path component), less
//! its `exclude` patterns. The key hashes the source path, the include/exclude lists and the
//! identity (inode, size, mtime) of each included entry, so an upgraded runtime or a rebuilt binary gets a fresh entry. Entries are built in a
//! temp dir and renamed into place, so concurrent instances never see half an entry.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use coderun_sandbox::RuntimeMount;

pub struct Store {
    root: PathBuf,
    /// Entries this process uses, each with a shared `flock` on its `.complete` file held for
    /// the store's life: the garbage collection of other instances never removes them.
    ready: Mutex<HashMap<RuntimeMount, (PathBuf, File)>>,
}

/// `flock` on a file of an entry.
fn flock(file: &File, op: libc::c_int) -> bool {
    // SAFETY: flock on an fd we own.
    unsafe { libc::flock(file.as_raw_fd(), op) == 0 }
}

impl Store {
    /// Opens the store, removing superseded entries no live instance uses (a rebuilt
    /// `coderun` binary or an upgraded runtime leaves its old entry behind).
    pub fn new(root: PathBuf) -> io::Result<Store> {
        fs::create_dir_all(&root)?;
        let store = Store {
            root,
            ready: Mutex::new(HashMap::new()),
        };
        store.collect_garbage();
        Ok(store)
    }

    /// The store directory holding `mount`'s files, built on first use.
    pub fn materialize(&self, mount: &RuntimeMount) -> io::Result<PathBuf> {
        if let Some((dir, _)) = self.lock().get(mount) {
            return Ok(dir.clone());
        }
        let dir = self.root.join(entry_name(mount)?);
        loop {
            if !dir.join(".complete").exists() {
                self.build(mount, &dir)?;
            }
            let Ok(marker) = File::open(dir.join(".complete")) else {
                continue; // collected between the check and the open: build it again
            };
            flock(&marker, libc::LOCK_SH);
            // A collector may have held the exclusive lock and removed the entry meanwhile.
            if dir.join(".complete").exists() {
                self.lock().insert(mount.clone(), (dir.clone(), marker));
                return Ok(dir);
            }
        }
    }

    /// Removes every entry that has a newer sibling of the same name (same runtime, other
    /// key) and that no live instance holds. Failures are only logged: the store still works.
    fn collect_garbage(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        let mut groups: HashMap<String, Vec<(std::time::SystemTime, PathBuf)>> = HashMap::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(".tmp-") || name.starts_with(".trash-") {
                // Left by a crashed build; fresh ones may belong to a build in progress.
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if old {
                    let _ = fs::remove_dir_all(&path);
                }
                continue;
            }
            let Some((group, _)) = name.rsplit_once('-') else {
                continue;
            };
            let mtime = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            groups
                .entry(group.to_string())
                .or_default()
                .push((mtime, path));
        }
        for (_, mut list) in groups {
            list.sort();
            list.pop(); // the newest stays
            for (_, path) in list {
                let Ok(marker) = File::open(path.join(".complete")) else {
                    continue;
                };
                if !flock(&marker, libc::LOCK_EX | libc::LOCK_NB) {
                    continue; // in use by a live instance
                }
                let trash = self.root.join(format!(".trash-{:x}", crate::random_u64()));
                if fs::rename(&path, &trash).is_ok() {
                    let _ = fs::remove_file(trash.join(".complete"));
                    drop(marker);
                    if let Err(e) = fs::remove_dir_all(&trash) {
                        tracing::warn!("runtime store: cannot remove {}: {e}", trash.display());
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RuntimeMount, (PathBuf, File)>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn build(&self, mount: &RuntimeMount, dir: &Path) -> io::Result<()> {
        let tmp = self.root.join(format!(
            ".tmp-{}-{:x}",
            std::process::id(),
            crate::random_u64()
        ));
        fs::create_dir(&tmp)?;
        let res = (|| {
            // A pattern that matches nothing is an optional part (e.g. a lib the runtime
            // lacks).
            for inc in included(mount) {
                let dst = tmp.join(&inc);
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent)?;
                }
                copy_tree(&mount.source.join(&inc), &dst, &inc, &mount.exclude)?;
            }
            fs::write(tmp.join(".complete"), b"")?;
            match fs::rename(&tmp, dir) {
                Ok(()) => Ok(()),
                // Another instance won the race: its entry is just as good.
                Err(_) if dir.join(".complete").exists() => fs::remove_dir_all(&tmp),
                Err(e) => Err(e),
            }
        })();
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        res
    }
}

fn entry_name(mount: &RuntimeMount) -> io::Result<String> {
    let mut h = DefaultHasher::new();
    mount.hash(&mut h);
    for inc in included(mount) {
        if let Ok(m) = fs::symlink_metadata(mount.source.join(&inc)) {
            (&inc, m.ino(), m.size(), m.mtime(), m.mtime_nsec()).hash(&mut h);
        }
    }
    let name: String = mount
        .target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "runtime".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Ok(format!("{name}-{:016x}", h.finish()))
}

/// The paths (relative to the runtime's source) the mount's `include` patterns name, sorted:
/// each pattern component may hold `*` (`bin/python3*`), matched against the directory's
/// entries; a pattern that matches nothing adds nothing. No include at all is the whole
/// directory (the empty path).
fn included(mount: &RuntimeMount) -> Vec<PathBuf> {
    if mount.include.is_empty() {
        return vec![PathBuf::new()];
    }
    let mut out = Vec::new();
    for pattern in &mount.include {
        let mut found = vec![PathBuf::new()];
        for comp in pattern.split('/').filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            for rel in &found {
                if comp.contains('*') {
                    let Ok(entries) = fs::read_dir(mount.source.join(rel)) else {
                        continue;
                    };
                    for e in entries.flatten() {
                        let name = e.file_name();
                        if glob(comp.as_bytes(), name.as_encoded_bytes()) {
                            next.push(rel.join(name));
                        }
                    }
                } else {
                    next.push(rel.join(comp));
                }
            }
            found = next;
        }
        out.extend(
            found
                .into_iter()
                .filter(|rel| fs::symlink_metadata(mount.source.join(rel)).is_ok()),
        );
    }
    out.sort();
    out.dedup();
    out
}

fn copy_tree(src: &Path, dst: &Path, rel: &Path, exclude: &[String]) -> io::Result<()> {
    if exclude.iter().any(|e| path_matches(e, rel)) {
        return Ok(());
    }
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_dir() {
        // The entry's own root (an empty include) already exists.
        if rel.as_os_str().is_empty() {
            fs::create_dir_all(dst)?;
        } else {
            fs::create_dir(dst)?;
        }
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            let name = entry.file_name();
            copy_tree(&entry.path(), &dst.join(&name), &rel.join(&name), exclude)?;
        }
        fs::set_permissions(dst, meta.permissions())?;
    } else if ft.is_file() && fs::hard_link(src, dst).is_err() {
        fs::copy(src, dst)?;
    }
    // Sockets, fifos and devices are never part of a runtime: skipped.
    Ok(())
}

/// Whether `rel` matches `pattern` component by component, where `*` in a pattern component
/// matches any run of characters (`lib/python3.*/test`).
fn path_matches(pattern: &str, rel: &Path) -> bool {
    let pats: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let comps: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    pats.len() == comps.len()
        && pats
            .iter()
            .zip(&comps)
            .all(|(p, c)| glob(p.as_bytes(), c.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs() {
        assert!(super::path_matches(
            "lib/python3.*/test",
            Path::new("lib/python3.11/test")
        ));
        assert!(!super::path_matches(
            "lib/python3.*/test",
            Path::new("lib/python3.11/test/x")
        ));
        assert!(!super::path_matches("lib/*/x", Path::new("lib/a/y")));
        assert!(super::path_matches("share", Path::new("share")));
    }

    use super::*;

    #[test]
    fn materializes_includes_without_excludes_and_reuses_entries() {
        let src = tempfile::tempdir().unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("lib/python/test")).unwrap();
        fs::create_dir_all(src.path().join("bin")).unwrap();
        fs::write(src.path().join("bin/python"), b"elf").unwrap();
        fs::write(src.path().join("lib/python/os.py"), b"os").unwrap();
        fs::write(src.path().join("lib/python/test/big.py"), b"big").unwrap();
        fs::write(src.path().join("secret"), b"no").unwrap();
        std::os::unix::fs::symlink("python", src.path().join("bin/python3")).unwrap();
        let mount = RuntimeMount {
            source: src.path().to_path_buf(),
            target: "/opt/coderun/python".into(),
            include: vec!["bin".into(), "lib".into(), "missing".into()],
            exclude: vec!["lib/python/test".into()],
        };
        let store = Store::new(store_dir.path().to_path_buf()).unwrap();
        let dir = store.materialize(&mount).unwrap();
        assert!(dir
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("python-"));
        assert_eq!(fs::read(dir.join("lib/python/os.py")).unwrap(), b"os");
        assert_eq!(
            fs::read_link(dir.join("bin/python3")).unwrap(),
            Path::new("python")
        );
        assert!(!dir.join("lib/python/test").exists());
        assert!(!dir.join("secret").exists());
        let again = Store::new(store_dir.path().to_path_buf()).unwrap();
        assert_eq!(again.materialize(&mount).unwrap(), dir);
        // A replaced runtime (an upgrade writes new files) gets a new entry.
        fs::write(src.path().join("bin/python.new"), b"elf2").unwrap();
        fs::rename(
            src.path().join("bin/python.new"),
            src.path().join("bin/python"),
        )
        .unwrap();
        let fresh = Store::new(store_dir.path().to_path_buf()).unwrap();
        assert_ne!(fresh.materialize(&mount).unwrap(), dir);
    }

    #[test]
    fn include_patterns_take_only_what_they_name() {
        // A pyenv-like install: the interpreter and its standard library, next to the host's
        // third-party packages (site-packages, their scripts in bin/) that a box must not see.
        let src = tempfile::tempdir().unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        let s = src.path();
        for dir in [
            "bin",
            "lib/pkgconfig",
            "lib/python3.11/site-packages/certifi",
        ] {
            fs::create_dir_all(s.join(dir)).unwrap();
        }
        for file in [
            "bin/python3.11",
            "bin/pip",
            "lib/libpython3.11.so.1.0",
            "lib/pkgconfig/python3.pc",
            "lib/python3.11/os.py",
            "lib/python3.11/site-packages/certifi/__init__.py",
            "lib/python3.11/site-packages/egress.pth",
        ] {
            fs::write(s.join(file), file).unwrap();
        }
        std::os::unix::fs::symlink("python3.11", s.join("bin/python3")).unwrap();
        let mount = RuntimeMount {
            source: s.to_path_buf(),
            target: "/opt/coderun/python".into(),
            include: vec![
                "bin/python3*".into(),
                "lib/libpython3*".into(),
                "lib/python3.*".into(),
                "include/*".into(), // matches nothing: skipped
            ],
            exclude: vec!["lib/python3.*/site-packages".into()],
        };
        let dir = Store::new(store_dir.path().to_path_buf())
            .unwrap()
            .materialize(&mount)
            .unwrap();
        let mut all: Vec<String> = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for e in fs::read_dir(dir.join(&rel)).unwrap() {
                let e = e.unwrap();
                let rel = rel.join(e.file_name());
                if e.file_type().unwrap().is_dir() {
                    stack.push(rel.clone());
                }
                all.push(rel.to_string_lossy().into_owned());
            }
        }
        all.sort();
        assert_eq!(
            all,
            [
                ".complete",
                "bin",
                "bin/python3",
                "bin/python3.11",
                "lib",
                "lib/libpython3.11.so.1.0",
                "lib/python3.11",
                "lib/python3.11/os.py",
            ]
        );
        assert_eq!(
            fs::read_link(dir.join("bin/python3")).unwrap(),
            Path::new("python3.11")
        );
    }

    #[test]
    fn an_empty_include_takes_the_whole_directory() {
        let src = tempfile::tempdir().unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/c"), b"c").unwrap();
        let mount = RuntimeMount {
            source: src.path().to_path_buf(),
            target: "/opt/coderun/tools".into(),
            include: vec![],
            exclude: vec![],
        };
        let dir = Store::new(store_dir.path().to_path_buf())
            .unwrap()
            .materialize(&mount)
            .unwrap();
        assert_eq!(fs::read(dir.join("a/b/c")).unwrap(), b"c");
    }

    #[test]
    fn superseded_entries_are_collected_unless_held() {
        let src = tempfile::tempdir().unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        fs::write(src.path().join("coderun"), b"v1").unwrap();
        let mount = RuntimeMount {
            source: src.path().to_path_buf(),
            target: "/opt/coderun/bin".into(),
            include: vec!["coderun".into()],
            exclude: vec![],
        };
        let live = Store::new(store_dir.path().to_path_buf()).unwrap();
        let v1 = live.materialize(&mount).unwrap();
        // A rebuilt binary (new inode) gets a new entry.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(src.path().join("coderun.new"), b"v2").unwrap();
        fs::rename(src.path().join("coderun.new"), src.path().join("coderun")).unwrap();
        let v2 = Store::new(store_dir.path().to_path_buf())
            .unwrap()
            .materialize(&mount)
            .unwrap();
        assert_ne!(v1, v2);
        // v1 is held by `live`: a new store must not collect it.
        let _third = Store::new(store_dir.path().to_path_buf()).unwrap();
        assert!(v1.exists());
        drop(live);
        let _fourth = Store::new(store_dir.path().to_path_buf()).unwrap();
        assert!(!v1.exists(), "superseded, unheld entry was not collected");
        assert!(v2.exists(), "the newest entry must stay");
    }
}
