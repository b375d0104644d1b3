// libmalloc-count.so has no API: it is preloaded (LD_PRELOAD) and read with SIGUSR2.
