// libmalloc-count.so: counts the heap allocations of a process, for `Benchmarks/run --allocs`.
//
//   LD_PRELOAD=.../libmalloc-count.so server ...     then   kill -USR2 PID
//
// Preloaded, it stands in for malloc, calloc, realloc, posix_memalign, aligned_alloc,
// memalign, valloc and pvalloc: each call adds one to a counter and passes on to glibc's own
// allocator (the __libc_* entry points, so no dlsym and no recursion at start-up). free is not
// replaced. On SIGUSR2 it writes one line, "malloc-count: N\n", to standard error (write(2)
// only: safe in a signal handler). Taking two readings around a known number of messages gives
// allocations per message. Counts every thread of the process.
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

// glibc's allocator under its internal names.
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static atomic_uint_fast64_t allocations;

static inline void count_one(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void *malloc(size_t size) {
    count_one();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_one();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    count_one();
    return __libc_realloc(pointer, size);
}

void *memalign(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    // The checks glibc makes: a power of two, a multiple of sizeof(void *).
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    count_one();
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer) return ENOMEM;
    *result = pointer;
    return 0;
}

void *valloc(size_t size) {
    count_one();
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

void *pvalloc(size_t size) {
    count_one();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return __libc_memalign(page, (size + page - 1) / page * page);
}

// Writes "malloc-count: N\n" with write(2) alone.
static void report(int signal_number) {
    (void)signal_number;
    char line[48] = "malloc-count: ";
    char digits[24];
    int n = 0;
    uint64_t value = atomic_load_explicit(&allocations, memory_order_relaxed);
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    size_t length = strlen(line);
    while (n > 0) line[length++] = digits[--n];
    line[length++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, length);
    (void)ignored;
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR2, &action, NULL);
}
