/*
** wal_batch: an SQLite VFS that writes a transaction's WAL frames in one system call.
**
** SQLite writes each WAL frame as two pwrite() calls (its 24-byte header, then the page). A
** group of 130 rows dirties about 110 pages, so its COMMIT made about 220 system calls before
** its fsync; on this project's virtual machines a system call costs 3 µs, and batched the same
** bytes cost a tenth of that. This VFS wraps the default one ("unix") and keeps the writes to a
** WAL file that follow each other in a buffer, written at once before anything could need them
** on disk:
**   - before the WAL is synced, read, truncated, sized or closed;
**   - before the frames are published to other connections: SQLite calls xShmBarrier on the
**     database file when it writes the WAL index's header, so even a connection that commits
**     without a sync (synchronous=NORMAL) never lets a reader see a frame not yet in the file;
**   - when the buffer is full.
** Durability is unchanged: a commit is durable once the WAL is synced, and the sync writes the
** buffer first. Every other file and call goes straight to the wrapped VFS.
**
** Loaded by src/store/database.ts (better-sqlite3's loadExtension); registered as the default
** VFS, so connections opened afterwards use it.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
#include <string.h>

#define BATCH_BYTES (8 * 1024 * 1024)
/* The unix VFS writes at most 0x1ffff bytes a call (it masks the length): whole pages below that. */
#define WRITE_BYTES 0x1f000

typedef struct BatchFile BatchFile;
struct BatchFile {
  sqlite3_file base;
  sqlite3_file *real;        /* the wrapped VFS's file, allocated right after this struct */
  const char *name;          /* as passed to xOpen: a WAL finds its database by this pointer */
  int isWal;
  /* A WAL file: the writes not yet made, bytes [start, start + length) of the file. */
  unsigned char *buffer;
  sqlite3_int64 start;
  int length;
  BatchFile *db;             /* a WAL: its database's file (same connection) */
  BatchFile *wal;            /* a database: its WAL's file, once opened */
  BatchFile *next;           /* open database files, to pair a WAL with its database */
};

static sqlite3_vfs *wrapped;
static BatchFile *openDatabases;

static int flush (BatchFile *p) {
  int rc = SQLITE_OK;
  int done;
  for (done = 0; done < p->length && rc == SQLITE_OK; done += WRITE_BYTES) {
    int amount = p->length - done < WRITE_BYTES ? p->length - done : WRITE_BYTES;
    rc = p->real->pMethods->xWrite(p->real, p->buffer + done, amount, p->start + done);
  }
  p->length = 0;
  return rc;
}

static int batchClose (sqlite3_file *f) {
  BatchFile *p = (BatchFile *)f;
  int rc = flush(p);
  int rcClose;
  sqlite3_mutex *mutex = sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_VFS1);
  sqlite3_mutex_enter(mutex);
  if (p->isWal) {
    if (p->db != 0) p->db->wal = 0;
  } else {
    BatchFile **link;
    if (p->wal != 0) p->wal->db = 0;
    for (link = &openDatabases; *link != 0; link = &(*link)->next) {
      if (*link == p) { *link = p->next; break; }
    }
  }
  sqlite3_mutex_leave(mutex);
  sqlite3_free(p->buffer);
  p->buffer = 0;
  rcClose = p->real->pMethods->xClose(p->real);
  return rc != SQLITE_OK ? rc : rcClose;
}

static int batchRead (sqlite3_file *f, void *out, int amount, sqlite3_int64 offset) {
  BatchFile *p = (BatchFile *)f;
  int rc = flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xRead(p->real, out, amount, offset);
}

static int batchWrite (sqlite3_file *f, const void *data, int amount, sqlite3_int64 offset) {
  BatchFile *p = (BatchFile *)f;
  int rc;
  if (!p->isWal) return p->real->pMethods->xWrite(p->real, data, amount, offset);
  /* A frame rewritten within the same transaction: in place, if it is still buffered. */
  if (p->length > 0 && offset >= p->start && offset + amount <= p->start + p->length) {
    memcpy(p->buffer + (offset - p->start), data, amount);
    return SQLITE_OK;
  }
  if (p->length > 0 && (offset != p->start + p->length || p->length + amount > BATCH_BYTES)) {
    rc = flush(p);
    if (rc != SQLITE_OK) return rc;
  }
  if (amount > WRITE_BYTES) return p->real->pMethods->xWrite(p->real, data, amount, offset);
  if (p->buffer == 0) {
    p->buffer = sqlite3_malloc(BATCH_BYTES);
    if (p->buffer == 0) return p->real->pMethods->xWrite(p->real, data, amount, offset);
  }
  if (p->length == 0) p->start = offset;
  memcpy(p->buffer + p->length, data, amount);
  p->length += amount;
  return SQLITE_OK;
}

static int batchTruncate (sqlite3_file *f, sqlite3_int64 size) {
  BatchFile *p = (BatchFile *)f;
  int rc = flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xTruncate(p->real, size);
}

static int batchSync (sqlite3_file *f, int flags) {
  BatchFile *p = (BatchFile *)f;
  int rc = flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xSync(p->real, flags);
}

static int batchFileSize (sqlite3_file *f, sqlite3_int64 *size) {
  BatchFile *p = (BatchFile *)f;
  int rc = flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xFileSize(p->real, size);
}

static int batchLock (sqlite3_file *f, int level) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xLock(p->real, level);
}

static int batchUnlock (sqlite3_file *f, int level) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xUnlock(p->real, level);
}

static int batchCheckReservedLock (sqlite3_file *f, int *out) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static int batchFileControl (sqlite3_file *f, int op, void *arg) {
  BatchFile *p = (BatchFile *)f;
  int rc = flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int batchSectorSize (sqlite3_file *f) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xSectorSize(p->real);
}

static int batchDeviceCharacteristics (sqlite3_file *f) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xDeviceCharacteristics(p->real);
}

static int batchShmMap (sqlite3_file *f, int page, int size, int extend, void volatile **out) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xShmMap(p->real, page, size, extend, out);
}

static int batchShmLock (sqlite3_file *f, int offset, int n, int flags) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xShmLock(p->real, offset, n, flags);
}

/* The WAL index's header is about to change: the frames it will publish must be in the file. */
static void batchShmBarrier (sqlite3_file *f) {
  BatchFile *p = (BatchFile *)f;
  if (p->wal != 0) flush(p->wal);
  p->real->pMethods->xShmBarrier(p->real);
}

static int batchShmUnmap (sqlite3_file *f, int deleteFlag) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xShmUnmap(p->real, deleteFlag);
}

static int batchFetch (sqlite3_file *f, sqlite3_int64 offset, int amount, void **out) {
  BatchFile *p = (BatchFile *)f;
  int rc = flush(p);
  if (rc != SQLITE_OK) return rc;
  return p->real->pMethods->xFetch(p->real, offset, amount, out);
}

static int batchUnfetch (sqlite3_file *f, sqlite3_int64 offset, void *page) {
  BatchFile *p = (BatchFile *)f;
  return p->real->pMethods->xUnfetch(p->real, offset, page);
}

static const sqlite3_io_methods batchMethods = {
  3, batchClose, batchRead, batchWrite, batchTruncate, batchSync, batchFileSize, batchLock, batchUnlock,
  batchCheckReservedLock, batchFileControl, batchSectorSize, batchDeviceCharacteristics,
  batchShmMap, batchShmLock, batchShmBarrier, batchShmUnmap, batchFetch, batchUnfetch
};

static int batchOpen (sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *outFlags) {
  BatchFile *p = (BatchFile *)f;
  int rc;
  memset(p, 0, sizeof(*p));
  p->real = (sqlite3_file *)&p[1];
  rc = wrapped->xOpen(wrapped, name, p->real, flags, outFlags);
  if (rc != SQLITE_OK || p->real->pMethods == 0) {
    /* xClose is not called when xOpen fails: nothing of ours to undo. */
    p->base.pMethods = 0;
    return rc;
  }
  p->base.pMethods = &batchMethods;
  p->name = name;
  p->isWal = (flags & SQLITE_OPEN_WAL) != 0 && name != 0;
  if ((flags & SQLITE_OPEN_MAIN_DB) != 0 || p->isWal) {
    sqlite3_mutex *mutex = sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_VFS1);
    sqlite3_mutex_enter(mutex);
    if (p->isWal) {
      /* The same connection's database: its name is the very string this WAL's name extends. */
      const char *database = sqlite3_filename_database(name);
      BatchFile *db;
      for (db = openDatabases; db != 0; db = db->next) {
        if (db->name == database && db->wal == 0) { db->wal = p; p->db = db; break; }
      }
    } else {
      p->next = openDatabases;
      openDatabases = p;
    }
    sqlite3_mutex_leave(mutex);
  }
  return SQLITE_OK;
}

static int batchDelete (sqlite3_vfs *vfs, const char *name, int syncDir) { return wrapped->xDelete(wrapped, name, syncDir); }
static int batchAccess (sqlite3_vfs *vfs, const char *name, int flags, int *out) { return wrapped->xAccess(wrapped, name, flags, out); }
static int batchFullPathname (sqlite3_vfs *vfs, const char *name, int n, char *out) { return wrapped->xFullPathname(wrapped, name, n, out); }
static void *batchDlOpen (sqlite3_vfs *vfs, const char *path) { return wrapped->xDlOpen(wrapped, path); }
static void batchDlError (sqlite3_vfs *vfs, int n, char *out) { wrapped->xDlError(wrapped, n, out); }
static void (*batchDlSym (sqlite3_vfs *vfs, void *handle, const char *symbol))(void) { return wrapped->xDlSym(wrapped, handle, symbol); }
static void batchDlClose (sqlite3_vfs *vfs, void *handle) { wrapped->xDlClose(wrapped, handle); }
static int batchRandomness (sqlite3_vfs *vfs, int n, char *out) { return wrapped->xRandomness(wrapped, n, out); }
static int batchSleep (sqlite3_vfs *vfs, int microseconds) { return wrapped->xSleep(wrapped, microseconds); }
static int batchCurrentTime (sqlite3_vfs *vfs, double *out) { return wrapped->xCurrentTime(wrapped, out); }
static int batchGetLastError (sqlite3_vfs *vfs, int n, char *out) { return wrapped->xGetLastError(wrapped, n, out); }
static int batchCurrentTimeInt64 (sqlite3_vfs *vfs, sqlite3_int64 *out) { return wrapped->xCurrentTimeInt64(wrapped, out); }

static sqlite3_vfs batchVfs = {
  2, 0, 1024, 0, "wal_batch", 0,
  batchOpen, batchDelete, batchAccess, batchFullPathname, batchDlOpen, batchDlError, batchDlSym, batchDlClose,
  batchRandomness, batchSleep, batchCurrentTime, batchGetLastError, batchCurrentTimeInt64
};

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_walbatch_init (sqlite3 *db, char **error, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api)
  if (sqlite3_vfs_find("wal_batch") == 0) {
    wrapped = sqlite3_vfs_find(0);
    if (wrapped == 0) return SQLITE_ERROR;
    batchVfs.szOsFile = (int)sizeof(BatchFile) + wrapped->szOsFile;
    batchVfs.mxPathname = wrapped->mxPathname;
    int rc = sqlite3_vfs_register(&batchVfs, 1);
    if (rc != SQLITE_OK) return rc;
  }
  /* Kept loaded once the connection that loaded it closes: the VFS outlives it. */
  return SQLITE_OK_LOAD_PERMANENTLY;
}
