/* psrenew: version (the Makefile reads it from here). */
#ifndef PSRENEW_VERSION_H
#define PSRENEW_VERSION_H
#define PSRENEW_VERSION "0.1.0"
#endif
