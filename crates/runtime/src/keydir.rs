//! The key store's directory: content-addressed bundle files (`<key_id>.hek`) that
//! replicas on a shared volume write and read concurrently, possibly with other
//! tenants' processes beside them. Every write goes to its own temporary file, is
//! flushed to disk and renamed into place, so a reader sees a whole file or none; no
//! path is followed through a symbolic link (a planted link cannot make the store read
//! or overwrite another file); and the directory is kept under a byte quota by
//! removing the bundles used least recently (file modification time, refreshed on use).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ckks::KeyId;

pub(crate) fn bundle_path(dir: &Path, id: KeyId) -> PathBuf {
    dir.join(format!("{id}.hek"))
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW).mode(0o600);
    }
    o
}

/// A name no other writer uses: this process, a per-process counter and the clock
/// (replicas on other hosts may share a pid).
fn temp_name(id: KeyId) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!(".{id}.{}.{n}.{t}.tmp", std::process::id())
}

/// A temporary file this old belongs to a write that will never finish: its process
/// was killed between create and rename (a live write takes seconds at most, and its
/// modification time moves while it runs).
pub(crate) const STALE_TEMP: Duration = Duration::from_secs(600);

/// Whether `name` is one of our temporary names (`.<64 hex>.<pid>.<n>.<nanos>.tmp`).
fn is_temp_name(name: &str) -> bool {
    name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")).and_then(|n| n.split_once('.')).is_some_and(
        |(id, rest)| {
            id.len() == 64
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && rest.split('.').count() == 3
                && rest.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        },
    )
}

/// Removes the temporary files of writes interrupted (kill -9, power loss) at least
/// `age` ago, which nothing else would ever remove; returns how many. Bundles, other
/// files and links are left alone.
pub(crate) fn sweep_stale_temps(dir: &Path, age: Duration) -> io::Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
        let old = m.modified().ok().and_then(|t| now.duration_since(t).ok()).is_some_and(|d| d >= age);
        if m.is_file() && old && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes `bytes` as the bundle `id`, atomically; an existing regular file of that
/// name (same name, same content) is only marked used.
pub(crate) fn write(dir: &Path, id: KeyId, bytes: &[u8]) -> io::Result<()> {
    let path = bundle_path(dir, id);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        touch(&path);
        return Ok(());
    }
    let tmp = dir.join(temp_name(id));
    // create_new: O_EXCL, which also refuses any existing link at the temporary name.
    let written = options().write(true).create_new(true).open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let placed = written.and_then(|()| std::fs::rename(&tmp, &path));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed?;
    // The rename itself is durable only once the directory is.
    File::open(dir).and_then(|d| d.sync_all())
}

/// The bytes of bundle `id` if a regular file holds them whole: not through a link,
/// at most `max_len` bytes, and hashing to `id` (content-addressed: a file whose hash
/// differs from its name is not trusted). Marks it used.
pub(crate) fn read(dir: &Path, id: KeyId, max_len: u64) -> Option<Vec<u8>> {
    let path = bundle_path(dir, id);
    let f = options().read(true).open(&path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > max_len {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max_len + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > max_len || KeyId::of_bundle(&bytes) != id {
        return None;
    }
    touch(&path);
    Some(bytes)
}

/// Marks a bundle used now (its modification time is the LRU clock). Best effort: a
/// replica without write access still serves.
fn touch(path: &Path) {
    if let Ok(f) = options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Removes the least recently used bundles until the directory's bundles take at most
/// `quota` bytes, never `keep` (the one just written). Returns the bytes left.
pub(crate) fn collect(dir: &Path, quota: u64, keep: KeyId) -> io::Result<u64> {
    // Interrupted writes are outside the quota's count: clear the stale ones here too.
    let _ = sweep_stale_temps(dir, STALE_TEMP);
    let keep = format!("{keep}.hek");
    let mut files: Vec<(SystemTime, u64, PathBuf, bool)> = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".hek") || name.starts_with('.') {
            continue;
        }
        // symlink_metadata: a link is neither counted nor removed through.
        let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
        if m.is_file() {
            files.push((m.modified().unwrap_or(UNIX_EPOCH), m.len(), e.path(), name == keep));
        }
    }
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort_by_key(|f| f.0);
    for (_, len, path, kept) in files {
        if total <= quota {
            break;
        }
        if kept {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => total -= len,
            // Another replica removed it first: the bytes are gone either way.
            Err(e) if e.kind() == io::ErrorKind::NotFound => total -= len,
            Err(_) => {}
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_writes_are_swept_once_stale_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let id = KeyId([0xab; 32]);
        let stale = d.path().join(temp_name(id));
        let fresh = d.path().join(temp_name(id));
        let other = d.path().join(".notes.tmp");
        for p in [&stale, &fresh, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        write(d.path(), id, b"whole").unwrap();
        let old = SystemTime::now() - STALE_TEMP - Duration::from_secs(1);
        for p in [&stale, &other, &bundle_path(d.path(), id)] {
            File::options().write(true).open(p).unwrap().set_modified(old).unwrap();
        }
        assert_eq!(sweep_stale_temps(d.path(), STALE_TEMP).unwrap(), 1);
        assert!(!stale.exists());
        assert!(fresh.exists() && other.exists() && bundle_path(d.path(), id).exists());
        assert!(!is_temp_name(".x.1.2.3.tmp") && is_temp_name(&temp_name(id)));
    }
}
