/* psrenew: GMime (and the GLib under it) loaded when first used.
 *
 * Only ps-fetch --maildir and --imap parse mail (lib/mime.c); linking
 * GMime would map GLib, GObject and GIO into every process at start-up.
 * As lib/lazy.c does for libcurl, libxml2 and libp11, this file defines the
 * few functions of theirs that lib/ calls, with their own names and
 * prototypes, hidden; the first call dlopens GMime by its Debian 12 soname
 * (GLib and GObject come with it as its dependencies, and dlsym on its
 * handle finds their functions too) and forwards. Without the library the
 * calls fail the way GMime reports failure (NULL, -1), with one message on
 * stderr naming the library.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <gmime/gmime.h>

#include <psrenew/mime.h>

#define HIDDEN __attribute__((visibility("hidden")))

static const char soname[] = "libgmime-3.0.so.0";
static void *handle;
static int failed;

static void *sym(const char *name)
{
	void *f;

	if (!handle && !failed) {
		handle = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
		if (!handle) {
			failed = 1;
			fprintf(stderr, "psrenew: cannot load %s: %s\n", soname,
				dlerror());
		}
	}
	if (!handle)
		return NULL;
	f = dlsym(handle, name);
	if (!f)
		fprintf(stderr, "psrenew: %s has no %s\n", soname, name);
	return f;
}

#define REAL(name)                                                             \
	static __typeof__(&name) real_;                                        \
	if (!real_) {                                                          \
		void *p_ = sym(#name);                                         \
		memcpy(&real_, &p_, sizeof(p_));                               \
	}

int ps_gmime_ready(void)
{
	static int done;

	if (!done) {
		void (*init)(void);
		void *p = sym("g_mime_init");

		memcpy(&init, &p, sizeof(p));
		if (!p)
			return 0;
		init();
		done = 1;
	}
	return 1;
}

HIDDEN GMimeStream *g_mime_stream_mem_new(void)
{
	REAL(g_mime_stream_mem_new);
	return real_ ? real_() : NULL;
}

HIDDEN GMimeStream *g_mime_stream_mem_new_with_buffer(const char *buffer,
						      size_t len)
{
	REAL(g_mime_stream_mem_new_with_buffer);
	return real_ ? real_(buffer, len) : NULL;
}

HIDDEN GByteArray *g_mime_stream_mem_get_byte_array(GMimeStreamMem *mem)
{
	REAL(g_mime_stream_mem_get_byte_array);
	return real_ ? real_(mem) : NULL;
}

HIDDEN GMimeParser *g_mime_parser_new_with_stream(GMimeStream *stream)
{
	REAL(g_mime_parser_new_with_stream);
	return real_ ? real_(stream) : NULL;
}

HIDDEN GMimeMessage *g_mime_parser_construct_message(GMimeParser *parser,
						     GMimeParserOptions *o)
{
	REAL(g_mime_parser_construct_message);
	return real_ ? real_(parser, o) : NULL;
}

HIDDEN void g_mime_message_foreach(GMimeMessage *message,
				   GMimeObjectForeachFunc callback,
				   gpointer user_data)
{
	REAL(g_mime_message_foreach);
	if (real_)
		real_(message, callback, user_data);
}

HIDDEN const char *g_mime_message_get_message_id(GMimeMessage *message)
{
	REAL(g_mime_message_get_message_id);
	return real_ ? real_(message) : NULL;
}

HIDDEN GMimeContentType *g_mime_object_get_content_type(GMimeObject *object)
{
	REAL(g_mime_object_get_content_type);
	return real_ ? real_(object) : NULL;
}

HIDDEN char *g_mime_content_type_get_mime_type(GMimeContentType *ct)
{
	REAL(g_mime_content_type_get_mime_type);
	return real_ ? real_(ct) : NULL;
}

HIDDEN const char *g_mime_content_type_get_parameter(GMimeContentType *ct,
						     const char *name)
{
	REAL(g_mime_content_type_get_parameter);
	return real_ ? real_(ct, name) : NULL;
}

HIDDEN const char *g_mime_part_get_filename(GMimePart *part)
{
	REAL(g_mime_part_get_filename);
	return real_ ? real_(part) : NULL;
}

HIDDEN GMimeDataWrapper *g_mime_part_get_content(GMimePart *part)
{
	REAL(g_mime_part_get_content);
	return real_ ? real_(part) : NULL;
}

HIDDEN ssize_t g_mime_data_wrapper_write_to_stream(GMimeDataWrapper *wrapper,
						   GMimeStream *stream)
{
	REAL(g_mime_data_wrapper_write_to_stream);
	return real_ ? real_(wrapper, stream) : -1;
}

HIDDEN char *g_mime_text_part_get_text(GMimeTextPart *part)
{
	REAL(g_mime_text_part_get_text);
	return real_ ? real_(part) : NULL;
}

HIDDEN GType g_mime_part_get_type(void)
{
	REAL(g_mime_part_get_type);
	return real_ ? real_() : 0;
}

HIDDEN GType g_mime_text_part_get_type(void)
{
	REAL(g_mime_text_part_get_type);
	return real_ ? real_() : 0;
}

/* GLib and GObject, through GMime's handle ---------------------------- */

HIDDEN gboolean g_type_check_instance_is_a(GTypeInstance *instance,
					   GType iface_type)
{
	REAL(g_type_check_instance_is_a);
	return real_ ? real_(instance, iface_type) : FALSE;
}

HIDDEN void g_object_unref(gpointer object)
{
	REAL(g_object_unref);
	if (real_)
		real_(object);
}

HIDDEN void g_free(gpointer mem)
{
	REAL(g_free);
	if (real_)
		real_(mem);
}
