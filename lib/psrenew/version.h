/* psrenew: version (the Makefile reads it from here). */
#ifndef PSRENEW_VERSION_H
#define PSRENEW_VERSION_H

#include <psrenew/export.h>

#define PSRENEW_VERSION "0.1.0"
/* The same as 0xMMmmpp (major, minor, patch), for #if. */
#define PSRENEW_VERSION_NUM 0x000100

/* The version of the library the program runs with ("0.1.0"). */
PS_API const char *ps_version(void);

#endif
