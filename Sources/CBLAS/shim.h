// OpenBLAS's CBLAS interface (Debian: libopenblas-dev, reached as <cblas.h> through
// /usr/include/x86_64-linux-gnu/). OpenBLAS's cblas.h also declares openblas_set_num_threads,
// openblas_get_num_threads, openblas_get_config and openblas_get_corename.
#include <cblas.h>
