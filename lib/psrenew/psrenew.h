/* psrenew: the whole public API of libpsrenew in one include. */
#ifndef PSRENEW_H
#define PSRENEW_H

#include <psrenew/version.h>
#include <psrenew/err.h>
#include <psrenew/record.h>
#include <psrenew/cert.h>
#include <psrenew/uri.h>
#include <psrenew/config.h>
#include <psrenew/token.h>
#include <psrenew/inventory.h>
#include <psrenew/state.h>
#include <psrenew/ca.h>
#include <psrenew/install.h>
#include <psrenew/renew.h>
#include <psrenew/fetch.h>
#include <psrenew/clean.h>
#include <psrenew/pfx.h>
#include <psrenew/http.h>
#include <psrenew/jip.h>

#endif
