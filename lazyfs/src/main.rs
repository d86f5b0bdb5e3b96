//! lazyfs: a FUSE file system that loses what was not synced, as a power cut does.
//!
//! In the manner of Jepsen's LazyFS (<https://github.com/dsrhaslab/lazyfs>): everything
//! lives in this process's memory, in two copies. The *live* copy is what every read,
//! write and directory operation sees; the *durable* copy is what a power cut leaves.
//! Only the calls POSIX names as making data durable copy live state into the durable
//! copy:
//!
//! - `fsync`/`fdatasync` of a file persists that file's contents and size (the pages
//!   written or truncated since its last sync). Not its name: POSIX does not promise
//!   that a new file's directory entry survives until its directory is synced
//!   (<https://pubs.opengroup.org/onlinepubs/9799919799/functions/fsync.html>), and
//!   SQLite does sync the directory after creating a journal or WAL file and after
//!   deleting a journal (`unixSync` with `UNIXFILE_DIRSYNC`, `unixDelete`).
//! - `fsync` of a directory persists its entries: names created, removed or renamed in
//!   it. A rename is durable once both directories are synced.
//! - Nothing else: `close`, `flush`, `release`, metadata changes and `statfs` do not.
//!
//! File metadata other than the size (mode, owner, times) is kept as it is at the cut:
//! the hub's correctness does not depend on it.
//!
//! The kernel is asked to cache nothing (entries and attributes expire at once, and
//! every open drops the page cache of the file, FUSE's default without
//! `FOPEN_KEEP_CACHE`), so after a cut the next open sees exactly the durable state.
//! POSIX record locks (SQLite's `fcntl` locks) are left to the kernel: the file system
//! does not ask for `FUSE_POSIX_LOCKS`, so they work between the processes of this
//! machine. SQLite's `-shm` file is mapped with `mmap`; its pages reach this process as
//! writes when the kernel writes them back, and it is treated like any file (SQLite
//! rebuilds it from the WAL when the first connection opens).
//!
//! # Use
//!
//! `lazyfs MOUNTPOINT` mounts, prints `ready`, then reads commands on standard input,
//! one a line, and answers each with one line:
//!
//! - `cut`: the power cut. Every file and directory goes back to its durable state,
//!   files no durable directory entry reaches are forgotten, and the answer is
//!   `cut files=N lost_bytes=N lost_entries=N` (the files whose live contents differed,
//!   the bytes of those contents that were not synced, the directory entries changed).
//!   Whoever uses the mount must have stopped first (the processes of a machine die
//!   with its power).
//! - `stats`: `stats syncs=N dirsyncs=N writes=N`.
//!
//! End of input unmounts and exits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

/// Entries and attributes expire at once: after a cut, nothing cached may survive.
const TTL: Duration = Duration::ZERO;
/// The unit in which written ranges are remembered until the next sync.
const PAGE: u64 = 4096;
const ROOT: u64 = 1;

/// A file's two copies.
#[derive(Default)]
struct FileData {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Pages (of [`PAGE`] bytes) of `live` written or truncated since the last sync.
    dirty: BTreeSet<u64>,
}

impl FileData {
    fn mark(&mut self, from: u64, to: u64) {
        if to > from {
            self.dirty.extend(from / PAGE..to.div_ceil(PAGE));
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if self.live.len() < end {
            self.live.resize(end, 0);
        }
        self.live[offset as usize..end].copy_from_slice(data);
        self.mark(offset, end as u64);
    }

    fn truncate(&mut self, size: u64) {
        let old = self.live.len() as u64;
        self.live.resize(size as usize, 0);
        self.mark(size.min(old), size.max(old));
    }

    /// fsync: the written pages and the size become durable.
    fn sync(&mut self) {
        let len = self.live.len();
        self.durable.resize(len, 0);
        for page in std::mem::take(&mut self.dirty) {
            let from = (page * PAGE) as usize;
            if from >= len {
                break;
            }
            let to = (from + PAGE as usize).min(len);
            self.durable[from..to].copy_from_slice(&self.live[from..to]);
        }
    }

    /// The cut: back to the durable copy; returns the bytes lost.
    fn cut(&mut self) -> u64 {
        let len = self.live.len().max(self.durable.len()) as u64;
        let lost = self
            .dirty
            .iter()
            .map(|page| ((page + 1) * PAGE).min(len).saturating_sub(page * PAGE))
            .sum();
        self.live.clone_from(&self.durable);
        self.dirty.clear();
        lost
    }
}

#[derive(Default)]
struct DirData {
    live: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
    parent: u64,
}

enum Kind {
    File(FileData),
    Dir(DirData),
}

struct Node {
    kind: Kind,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Live directory entries naming this node.
    links: u32,
}

impl Node {
    fn new(kind: Kind, perm: u16, req: &Request) -> Self {
        let now = SystemTime::now();
        Self {
            kind,
            perm,
            uid: req.uid(),
            gid: req.gid(),
            atime: now,
            mtime: now,
            ctime: now,
            links: 1,
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, nlink) = match &self.kind {
            Kind::File(file) => (FileType::RegularFile, file.live.len() as u64, self.links),
            Kind::Dir(_) => (FileType::Directory, PAGE, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind,
            perm: self.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        }
    }
}

#[derive(Default)]
struct Counters {
    syncs: u64,
    dirsyncs: u64,
    writes: u64,
}

struct State {
    nodes: HashMap<u64, Node>,
    next: u64,
    counters: Counters,
}

impl State {
    fn dir(&mut self, ino: u64) -> Result<&mut DirData, Errno> {
        match self.nodes.get_mut(&ino).map(|node| &mut node.kind) {
            Some(Kind::Dir(dir)) => Ok(dir),
            Some(Kind::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        match self.nodes.get_mut(&ino).map(|node| &mut node.kind) {
            Some(Kind::File(file)) => Ok(file),
            Some(Kind::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<(u64, FileAttr), Errno> {
        let ino = *self.dir(parent)?.live.get(name).ok_or(Errno::ENOENT)?;
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        Ok((ino, node.attr(ino)))
    }

    fn insert(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<(u64, FileAttr), Errno> {
        let ino = self.next;
        let dir = self.dir(parent)?;
        if dir.live.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        dir.live.insert(name.to_owned(), ino);
        self.next += 1;
        let attr = node.attr(ino);
        self.nodes.insert(ino, node);
        self.touch(parent);
        Ok((ino, attr))
    }

    fn touch(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            node.mtime = now;
            node.ctime = now;
        }
    }

    /// Drops the live entry `name` of `parent` (a file, or an empty directory when
    /// `dir` is set).
    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.live.get(name).ok_or(Errno::ENOENT)?;
        match (&self.nodes.get(&ino).ok_or(Errno::ENOENT)?.kind, dir) {
            (Kind::Dir(d), true) if !d.live.is_empty() => return Err(Errno::ENOTEMPTY),
            (Kind::Dir(_), false) => return Err(Errno::EISDIR),
            (Kind::File(_), true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir(parent)?.live.remove(name);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.links = node.links.saturating_sub(1);
            node.ctime = SystemTime::now();
        }
        self.touch(parent);
        Ok(())
    }

    fn cut(&mut self) -> String {
        let (mut files, mut lost_bytes, mut lost_entries) = (0u64, 0u64, 0u64);
        for node in self.nodes.values_mut() {
            match &mut node.kind {
                Kind::File(file) => {
                    let lost = file.cut();
                    if lost > 0 {
                        files += 1;
                        lost_bytes += lost;
                    }
                }
                Kind::Dir(dir) => {
                    let changed = dir
                        .live
                        .iter()
                        .filter(|(name, ino)| dir.durable.get(*name) != Some(ino))
                        .count()
                        + dir
                            .durable
                            .keys()
                            .filter(|name| !dir.live.contains_key(*name))
                            .count();
                    lost_entries += changed as u64;
                    dir.live.clone_from(&dir.durable);
                }
            }
        }
        // What the durable tree reaches survives; its links and parents follow it.
        let mut reached: HashMap<u64, (u32, u64)> = HashMap::from([(ROOT, (1, ROOT))]);
        let mut todo = vec![ROOT];
        while let Some(dir) = todo.pop() {
            let children: Vec<u64> = match self.nodes.get(&dir).map(|node| &node.kind) {
                Some(Kind::Dir(data)) => data.live.values().copied().collect(),
                _ => continue,
            };
            for child in children {
                let seen = reached.contains_key(&child);
                reached.entry(child).or_insert((0, dir)).0 += 1;
                if !seen {
                    todo.push(child);
                }
            }
        }
        self.nodes.retain(|ino, _| reached.contains_key(ino));
        for (ino, node) in &mut self.nodes {
            let (links, parent) = reached[ino];
            node.links = links;
            if let Kind::Dir(dir) = &mut node.kind {
                dir.parent = parent;
                // Entries naming a node that did not survive (it cannot be reached
                // otherwise) are gone with it.
            }
        }
        format!("cut files={files} lost_bytes={lost_bytes} lost_entries={lost_entries}")
    }
}

/// The file system; clones share it (the FUSE session and the command loop).
#[derive(Clone)]
struct LazyFs {
    // A std Mutex: every operation is a short in-memory change.
    state: Arc<Mutex<State>>,
}

impl LazyFs {
    fn new() -> Self {
        let root = Node {
            kind: Kind::Dir(DirData {
                parent: ROOT,
                ..DirData::default()
            }),
            perm: 0o755,
            uid: 0,
            gid: 0,
            atime: SystemTime::now(),
            mtime: SystemTime::now(),
            ctime: SystemTime::now(),
            links: 1,
        };
        Self {
            state: Arc::new(Mutex::new(State {
                nodes: HashMap::from([(ROOT, root)]),
                next: ROOT + 1,
                counters: Counters::default(),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn time(value: TimeOrNow) -> SystemTime {
    match value {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.state().lookup(parent.0, name) {
            Ok((_, attr)) => reply.entry(&TTL, &attr, Generation(0)),
            Err(err) => reply.error(err),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().nodes.get(&ino.0) {
            Some(node) => reply.attr(&TTL, &node.attr(ino.0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        if let Some(size) = size {
            match state.file(ino.0) {
                Ok(file) => file.truncate(size),
                Err(err) => return reply.error(err),
            }
        }
        let Some(node) = state.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(mode) = mode {
            node.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = uid {
            node.uid = uid;
        }
        if let Some(gid) = gid {
            node.gid = gid;
        }
        if let Some(atime) = atime {
            node.atime = time(atime);
        }
        if let Some(mtime) = mtime {
            node.mtime = time(mtime);
        }
        if size.is_some() {
            node.mtime = SystemTime::now();
        }
        node.ctime = SystemTime::now();
        reply.attr(&TTL, &node.attr(ino.0));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let node = Node::new(
            Kind::File(FileData::default()),
            (mode & !umask & 0o7777) as u16,
            req,
        );
        match self.state().insert(parent.0, name, node) {
            Ok((_, attr)) => reply.entry(&TTL, &attr, Generation(0)),
            Err(err) => reply.error(err),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let node = Node::new(
            Kind::Dir(DirData {
                parent: parent.0,
                ..DirData::default()
            }),
            (mode & !umask & 0o7777) as u16,
            req,
        );
        match self.state().insert(parent.0, name, node) {
            Ok((_, attr)) => reply.entry(&TTL, &attr, Generation(0)),
            Err(err) => reply.error(err),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(err),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(err),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let mut state = self.state();
        let result = (|| {
            let (ino, attr) = state.lookup(parent.0, name)?;
            match state.lookup(newparent.0, newname) {
                Ok((target, _)) if target == ino => return Ok(()),
                Ok(_) if flags.contains(RenameFlags::RENAME_NOREPLACE) => {
                    return Err(Errno::EEXIST);
                }
                Ok((_, target)) => {
                    // rename(2): a directory replaces an empty directory only, a file a
                    // file only.
                    match (attr.kind, target.kind) {
                        (FileType::Directory, FileType::Directory) => {
                            state.remove(newparent.0, newname, true)?
                        }
                        (FileType::Directory, _) => return Err(Errno::ENOTDIR),
                        (_, FileType::Directory) => return Err(Errno::EISDIR),
                        _ => state.remove(newparent.0, newname, false)?,
                    }
                }
                Err(_) => {}
            }
            state.dir(parent.0)?.live.remove(name);
            state.dir(newparent.0)?.live.insert(newname.to_owned(), ino);
            if let Some(Kind::Dir(dir)) = state.nodes.get_mut(&ino).map(|node| &mut node.kind) {
                dir.parent = newparent.0;
            }
            state.touch(parent.0);
            state.touch(newparent.0);
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(err),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.state().nodes.get(&ino.0).map(|node| &node.kind) {
            // No FOPEN_KEEP_CACHE: the kernel drops the file's cached pages on open.
            Some(Kind::File(_)) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(Kind::Dir(_)) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut state = self.state();
        match state.file(ino.0) {
            Ok(file) => {
                let from = (offset as usize).min(file.live.len());
                let to = (from + size as usize).min(file.live.len());
                reply.data(&file.live[from..to]);
            }
            Err(err) => reply.error(err),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        state.counters.writes += 1;
        // The kernel has already turned an O_APPEND write into one at the end of the
        // file (generic_write_checks), so the offset is where the data goes.
        match state.file(ino.0) {
            Ok(file) => file.write(offset, data),
            Err(err) => return reply.error(err),
        }
        state.touch(ino.0);
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) does not make anything durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        state.counters.syncs += 1;
        // fdatasync persists the size too: it is needed to read the data back.
        match state.file(ino.0) {
            Ok(file) => {
                file.sync();
                reply.ok();
            }
            Err(err) => reply.error(err),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.state().dir(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(err) => reply.error(err),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut state = self.state();
        let (parent, children) = match state.dir(ino.0) {
            Ok(dir) => (
                dir.parent,
                dir.live
                    .iter()
                    .map(|(name, ino)| (name.clone(), *ino))
                    .collect::<Vec<_>>(),
            ),
            Err(err) => return reply.error(err),
        };
        let mut entries = vec![
            (OsString::from("."), ino.0, FileType::Directory),
            (OsString::from(".."), parent, FileType::Directory),
        ];
        for (name, child) in children {
            let kind = match state.nodes.get(&child).map(|node| &node.kind) {
                Some(Kind::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            entries.push((name, child, kind));
        }
        for (index, (name, child, kind)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        state.counters.dirsyncs += 1;
        match state.dir(ino.0) {
            Ok(dir) => {
                dir.durable.clone_from(&dir.live);
                reply.ok();
            }
            Err(err) => reply.error(err),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Room enough for a test: 4 GiB free of 4 GiB.
        let blocks = (4u64 << 30) / PAGE;
        reply.statfs(
            blocks,
            blocks,
            blocks,
            1 << 20,
            1 << 20,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        if self.state().nodes.contains_key(&ino.0) {
            reply.ok();
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let attr = match state.lookup(parent.0, name) {
            // O_CREAT without O_EXCL on an existing file opens it.
            Ok(_) if flags & libc::O_EXCL != 0 => return reply.error(Errno::EEXIST),
            Ok((ino, attr)) => {
                if flags & libc::O_TRUNC != 0 {
                    match state.file(ino) {
                        Ok(file) => file.truncate(0),
                        Err(err) => return reply.error(err),
                    }
                    state.nodes[&ino].attr(ino)
                } else {
                    attr
                }
            }
            Err(_) => {
                let node = Node::new(
                    Kind::File(FileData::default()),
                    (mode & !umask & 0o7777) as u16,
                    req,
                );
                match state.insert(parent.0, name, node) {
                    Ok((_, attr)) => attr,
                    Err(err) => return reply.error(err),
                }
            }
        };
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(0),
            FopenFlags::empty(),
        );
    }
}

fn main() {
    let Some(mountpoint) = std::env::args_os().nth(1) else {
        eprintln!("usage: lazyfs MOUNTPOINT (then commands on standard input: cut, stats)");
        std::process::exit(2);
    };
    let fs = LazyFs::new();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("lazyfs-memory".into()),
        MountOption::Subtype("lazyfs".into()),
        MountOption::NoAtime,
    ];
    // As root, fusermount3 unmounts when this process ends, however it ends. That needs
    // `allow_other` or `allow_root`, which other users may set only with
    // `user_allow_other` in /etc/fuse.conf; for them the mount ends with the command
    // loop (end of input), and the hub runs as the same user anyway.
    let root = std::fs::metadata("/proc/self").is_ok_and(|proc| {
        use std::os::unix::fs::MetadataExt;
        proc.uid() == 0
    });
    if root {
        config.mount_options.push(MountOption::AutoUnmount);
        config.acl = fuser::SessionACL::All;
    }
    let session = match fuser::spawn_mount(fs.clone(), &mountpoint, &config) {
        Ok(session) => session,
        Err(err) => {
            eprintln!("lazyfs: cannot mount {}: {err}", mountpoint.display());
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.trim() {
            "cut" => fs.state().cut(),
            "stats" => {
                let state = fs.state();
                let c = &state.counters;
                format!(
                    "stats syncs={} dirsyncs={} writes={}",
                    c.syncs, c.dirsyncs, c.writes
                )
            }
            "" => continue,
            other => format!("error unknown command {other:?}"),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    drop(session);
    // A process that still has a file open on the mount makes the unmount fail (EBUSY)
    // and leaves a dead mount behind; detach it lazily instead.
    let mounted = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        let path = std::path::Path::new(&mountpoint);
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        info.lines()
            .any(|line| line.split(' ').nth(4) == path.to_str())
    });
    if mounted {
        let _ = std::process::Command::new("fusermount3")
            .args(["-u", "-z", "-q", "--"])
            .arg(&mountpoint)
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_synced_pages_and_size_survive_a_cut() {
        let mut file = FileData::default();
        file.write(0, &[1; 5000]);
        file.sync();
        file.write(4096, &[2; 10]);
        file.write(9000, &[3; 10]);
        assert_eq!(file.cut(), 4096 + (9010 - 8192));
        assert_eq!(file.live, vec![1; 5000]);
    }

    #[test]
    fn a_truncate_then_regrow_is_zeros_once_synced() {
        let mut file = FileData::default();
        file.write(0, &[7; 3 * PAGE as usize]);
        file.sync();
        file.truncate(0);
        file.write(2 * PAGE, &[9; 4]);
        file.sync();
        assert_eq!(file.durable.len(), 2 * PAGE as usize + 4);
        assert!(file.durable[..2 * PAGE as usize].iter().all(|b| *b == 0));
        assert_eq!(&file.durable[2 * PAGE as usize..], &[9; 4]);
        file.write(0, &[5; 1]);
        file.cut();
        assert_eq!(file.live[0], 0);
    }
}
