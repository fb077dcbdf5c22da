/*
 * h3wt_path: request :path -> file below a web root, and file name -> content
 * type.  Pure string functions: nothing here touches the file system, so the
 * answer depends only on the bytes given (no symlink or TOCTOU reasoning is
 * possible or attempted; the caller opens the result with its own policy).
 *
 * Resolution is one left-to-right pass over the path that writes decoded
 * segments straight into the caller's buffer.  That is possible because the
 * only dot-segment that would need backtracking in RFC 3986 section 5.2.4
 * (remove_dot_segments) is "..", and ".." is refused rather than applied:
 * every other step (dropping "." and empty segments) only ever removes the
 * segment being written.  So the cost is O(strlen(root) + pathlen) and no
 * memory is allocated.
 */
#include "h3wt_path.h"

#include <string.h>

/* Value of an ASCII hex digit (RFC 3986 section 2.1: HEXDIG, either case), or
   -1.  Written out rather than using isxdigit() so the locale cannot widen
   what counts as a digit. */
static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Appends one byte at logical position *n.  Past the end of out the byte is
   only counted, so that resolution can go on validating the rest of the path:
   a hostile path that is also long gets NOT_FOUND / BAD_REQUEST, not
   TOO_LONG, whatever the caller's buffer size. */
static void emit(char *out, size_t outlen, size_t *n, char c) {
  if (*n < outlen)
    out[*n] = c;
  (*n)++;
}

static int fail(char *out, size_t outlen, int rc) {
  /* Never leave a half-built path behind for a caller that ignores rc. */
  if (outlen > 0)
    out[0] = '\0';
  return rc;
}

int h3wt_path_resolve(const char *root, const char *path, size_t pathlen,
                      char *out, size_t outlen) {
  static const char index_name[] = "/index.html";
  size_t end = pathlen, rootlen, i, n = 0;
  int is_dir = 1; /* "/" alone names the root directory */

  if (out == NULL)
    outlen = 0;
  if (root == NULL || out == NULL || (path == NULL && pathlen > 0))
    return fail(out, outlen, H3WT_PATH_BAD_REQUEST);

  /* The path ends at the first '?' (RFC 3986 section 3.4) or '#' (section
     3.5; a fragment should never reach a server, but if one does it is not
     part of the path).  Only raw delimiters count: "%3F" is data.  A raw NUL,
     CR or LF anywhere in :path, query included, makes the request malformed
     (RFC 9114 section 4.1.2), and a raw NUL would also truncate the path for
     any C string function downstream. */
  for (i = 0; i < pathlen; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c == '\0' || c == '\r' || c == '\n')
      return fail(out, outlen, H3WT_PATH_BAD_REQUEST);
    if ((c == '?' || c == '#') && end == pathlen)
      end = i;
  }
  /* origin-form must be absolute (RFC 9110 section 7.1): this also refuses
     "", "*", "?x", "http://..." and "%2F...". */
  if (end == 0 || path[0] != '/')
    return fail(out, outlen, H3WT_PATH_BAD_REQUEST);

  /* root is trusted configuration and is copied verbatim. */
  rootlen = strlen(root);
  if (rootlen < outlen)
    memcpy(out, root, rootlen);
  n = rootlen;

  /* Invariant at the top of the loop: path[i] == '/' (or i == end). */
  i = 0;
  while (i < end) {
    size_t seg_start = n, seg_len = 0;
    unsigned char first = 0;

    i++; /* the '/' */
    emit(out, outlen, &n, '/');
    while (i < end && path[i] != '/') {
      unsigned char c = (unsigned char)path[i];

      if (c == '%') {
        int hi, lo;
        /* RFC 3986 section 2.1: '%' must be followed by two HEXDIG.  Both
           bounds checks come before either read so "%" and "%2" at the very
           end of the buffer are not over-read. */
        if (end - i < 3)
          return fail(out, outlen, H3WT_PATH_BAD_REQUEST);
        hi = hex_value((unsigned char)path[i + 1]);
        lo = hex_value((unsigned char)path[i + 2]);
        if (hi < 0 || lo < 0)
          return fail(out, outlen, H3WT_PATH_BAD_REQUEST);
        c = (unsigned char)(hi << 4 | lo);
        i += 3;
        if (c == '\0')
          return fail(out, outlen, H3WT_PATH_BAD_REQUEST);
        /* An encoded '/' is data inside one segment (RFC 3986 section 2.2)
           and no file name can hold it, so it names nothing; decoding it
           into a separator is the classic "..%2f.." bypass.  '\\' is refused
           for the same reason as the raw one below.  Decoding is done
           exactly once, so "%252e" stays the literal "%2e". */
        if (c == '/' || c == '\\')
          return fail(out, outlen, H3WT_PATH_NOT_FOUND);
      } else {
        /* Space, controls and DEL are never valid in a URI (RFC 3986
           section 2); raw non-ASCII is not either, but some clients send
           UTF-8 unescaped and it is harmless here, so it is tolerated. */
        if (c <= 0x20 || c == 0x7f)
          return fail(out, outlen, H3WT_PATH_BAD_REQUEST);
        /* A raw backslash is an ordinary byte to POSIX but a separator to
           Windows and to some proxies and path normalisers ("..\\.."); no
           legitimate web content needs it. */
        if (c == '\\')
          return fail(out, outlen, H3WT_PATH_NOT_FOUND);
        i++;
      }
      if (seg_len == 0)
        first = c;
      seg_len++;
      emit(out, outlen, &n, (char)c);
    }

    if (seg_len == 0 || (seg_len == 1 && first == '.')) {
      /* Empty segment ("//") or "." (RFC 3986 section 5.2.4, step 2B):
         unwrite it.  Either way what precedes it is a directory, so
         "/a/." means "/a/". */
      n = seg_start;
      is_dir = 1;
    } else if (first == '.') {
      /* ".." (any spelling: "%2e%2E", ".%2e", ...) and hidden names such as
         ".git" or ".env".  Refusing ".." instead of applying it means a path
         can never climb, not even within the root, and keeps this one pass. */
      return fail(out, outlen, H3WT_PATH_NOT_FOUND);
    } else {
      is_dir = 0;
    }
  }

  if (is_dir) {
    size_t k;
    for (k = 0; k < sizeof(index_name) - 1; k++)
      emit(out, outlen, &n, index_name[k]);
  }
  /* n bytes plus the NUL. */
  if (n >= outlen)
    return fail(out, outlen, H3WT_PATH_TOO_LONG);
  out[n] = '\0';
  return H3WT_PATH_OK;
}

/* ASCII-only case-insensitive equality of s[0..len) and the lower-case,
   NUL-terminated lower: file extensions are matched without the locale. */
static int ext_equal(const char *s, size_t len, const char *lower) {
  size_t k;
  for (k = 0; k < len; k++) {
    unsigned char c = (unsigned char)s[k];
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c - 'A' + 'a');
    if (lower[k] == '\0' || c != (unsigned char)lower[k])
      return 0;
  }
  return lower[len] == '\0';
}

#define TEXT_UTF8 "; charset=utf-8"

static const struct {
  const char *ext;
  const char *type;
} mime_types[] = {
    {"html", "text/html" TEXT_UTF8},
    {"htm", "text/html" TEXT_UTF8},
    {"css", "text/css" TEXT_UTF8},
    /* RFC 9239 makes text/javascript the one type for both scripts and
       modules. */
    {"js", "text/javascript" TEXT_UTF8},
    {"mjs", "text/javascript" TEXT_UTF8},
    {"txt", "text/plain" TEXT_UTF8},
    {"md", "text/markdown" TEXT_UTF8},
    {"csv", "text/csv" TEXT_UTF8},
    /* JSON is always UTF-8 (RFC 8259 section 8.1) and application/json
       defines no charset parameter; source maps are JSON. */
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"bmp", "image/bmp"},
    /* Browsers only stream-compile wasm served as application/wasm. */
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
};

const char *h3wt_path_mime_type(const char *filename) {
  static const char fallback[] = "application/octet-stream";
  const char *base, *dot = NULL, *p;
  size_t k, len;

  if (filename == NULL)
    return fallback;
  /* The extension is what follows the last '.' of the last path component,
     so "a.d/file" has none.  A leading dot marks a hidden file, not an
     extension: ".json" is a file named ".json" with no extension. */
  base = filename;
  for (p = filename; *p != '\0'; p++) {
    if (*p == '/')
      base = p + 1, dot = NULL;
    else if (*p == '.')
      dot = p;
  }
  if (dot == NULL || dot == base)
    return fallback;
  len = (size_t)(p - (dot + 1));
  for (k = 0; k < sizeof(mime_types) / sizeof(mime_types[0]); k++) {
    if (ext_equal(dot + 1, len, mime_types[k].ext))
      return mime_types[k].type;
  }
  return fallback;
}
