/* psrenew: PS_API marks the functions libpsrenew exports (its public API). */
#ifndef PSRENEW_EXPORT_H
#define PSRENEW_EXPORT_H

/*
 * The library is built with -fvisibility=hidden: a function is visible
 * outside it only when its declaration in a public header carries PS_API,
 * and lib/libpsrenew.map names it (make lint and tests/cli/install.bats
 * check that the two lists and the library's dynamic symbols agree). In
 * C++ the declarations get C linkage.
 */
#ifdef __cplusplus
#define PS_API extern "C" __attribute__((visibility("default")))
#else
#define PS_API __attribute__((visibility("default")))
#endif

#endif
