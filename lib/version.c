/* psrenew: the version of the library a program runs with. */
#include <psrenew/version.h>

const char *ps_version(void)
{
	return PSRENEW_VERSION;
}
