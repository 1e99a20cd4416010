/* fraiseql-wire cannot be unloaded: it is linked with -z nodelete (build.rs), so dlclose()
 * leaves it in place. Unloading it would be undefined behaviour: its runtime's worker threads
 * run code inside the library and thread-local destructors registered by it run at thread
 * exit. This program (tests/packaging/run.sh) checks, on the installed library:
 *
 *   1. dlopen, dlclose before any use: the library stays loaded (RTLD_NOLOAD finds it);
 *   2. start the runtime (a connection attempt to a closed port: worker threads named
 *      "fraiseql-wire" exist afterwards, and the thread-local last error is set), dlclose:
 *      still loaded, and functions resolved before dlclose still work;
 *   3. dlopen again: the same library instance (its state survived), and it still works;
 *   4. dlclose again and exit normally (the runtime's threads and TLS destructors run at exit
 *      against a library that is still mapped).
 *
 * Usage: dlclose /path/to/libfraiseql_wire.so.N */
#define _POSIX_C_SOURCE 200809L
#include <fraiseql_wire.h>

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef const char *(*version_fn)(void);
typedef enum fw_status (*client_new_fn)(const char *, struct fw_client **);
typedef const struct fw_error *(*last_error_fn)(void);
typedef const char *(*error_message_fn)(const struct fw_error *);

static int failures;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "dlclose: FAIL %s:%d: ", __FILE__, __LINE__);                      \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* Threads of this process named "fraiseql-wire" (the runtime's workers). */
static int runtime_threads(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char path[300], comm[64] = "";
        FILE *f;
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        if (fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "fraiseql-wire", 13) == 0) {
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* The number of runtime threads once it stops changing (the workers start asynchronously):
 * the same count in 5 samples 50 ms apart, within 5 s. */
static int settled_runtime_threads(void) {
    struct timespec tick = {0, 50 * 1000 * 1000};
    int last = runtime_threads(), same = 0, i;
    for (i = 0; i < 100 && same < 4; i++) {
        int now;
        nanosleep(&tick, NULL);
        now = runtime_threads();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

/* Resolve `name` into the function pointer at `fn` (POSIX guarantees that a function
 * pointer can hold dlsym's result; ISO C has no conversion, hence the copy). */
static int sym(void *h, const char *name, void *fn, size_t size) {
    void *p = dlsym(h, name);
    CHECK(p != NULL && size == sizeof p, "dlsym(%s): %s", name, p ? "size" : dlerror());
    if (p == NULL || size != sizeof p) {
        return -1;
    }
    memcpy(fn, &p, sizeof p);
    return 0;
}

#define SYM(h, name, fn) sym((h), (name), &(fn), sizeof(fn))

/* A connection attempt that fails fast (nothing listens on port 1): starts the runtime and
 * sets the calling thread's last error. */
static void connect_refused(void *h) {
    client_new_fn client_new;
    last_error_fn last_error;
    error_message_fn message;
    struct fw_client *c = NULL;
    enum fw_status st;
    if (SYM(h, "fw_client_new", client_new) != 0 || SYM(h, "fw_last_error", last_error) != 0 ||
        SYM(h, "fw_error_message", message) != 0) {
        return;
    }
    st = client_new("host=127.0.0.1 port=1 user=nobody dbname=nobody connect_timeout=5", &c);
    CHECK(st < 0 && c == NULL, "fw_client_new to port 1 returned %d", (int)st);
    CHECK(last_error() != NULL && message(last_error()) != NULL, "no last error after a failure");
}

int main(int argc, char **argv) {
    const char *path;
    void *h, *again;
    version_fn version;
    int threads;

    if (argc != 2) {
        fprintf(stderr, "usage: %s /path/to/libfraiseql_wire.so.N\n", argv[0]);
        return 2;
    }
    path = argv[1];

    /* 1. load and unload before any use */
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlclose: dlopen(%s): %s\n", path, dlerror());
        return 1;
    }
    if (SYM(h, "fw_version", version) != 0) {
        return 1;
    }
    CHECK(strcmp(version(), FW_VERSION_STRING) == 0, "fw_version() = %s", version());
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    again = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    CHECK(again != NULL, "unloaded by dlclose before any use: not linked with -z nodelete?");
    if (again != NULL) {
        dlclose(again);
    }

    /* 2. start the runtime, then dlclose */
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen again: %s", dlerror());
    if (h == NULL) {
        return 1;
    }
    connect_refused(h);
    threads = settled_runtime_threads();
    CHECK(threads > 0, "no runtime threads after a connection attempt (%d)", threads);
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    again = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    CHECK(again != NULL, "unloaded by dlclose while its runtime threads exist");
    if (again != NULL) {
        dlclose(again);
    }
    CHECK(strcmp(version(), FW_VERSION_STRING) == 0, "fw_version() after dlclose");
    CHECK(settled_runtime_threads() == threads, "runtime threads changed across dlclose: %d -> %d",
          threads, runtime_threads());

    /* 3. load again: the same instance, still working */
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen after dlclose: %s", dlerror());
    if (h == NULL) {
        return 1;
    }
    {
        version_fn now;
        CHECK(SYM(h, "fw_version", now) == 0 && now == version,
              "fw_version moved: the library was reloaded");
    }
    connect_refused(h);
    CHECK(settled_runtime_threads() == threads, "a second runtime was started (%d threads, was %d)",
          runtime_threads(), threads);

    /* 4. unload and exit normally */
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    if (failures == 0) {
        printf("dlclose: ok (%d runtime threads, library stayed loaded)\n", threads);
    }
    return failures == 0 ? 0 : 1;
}
