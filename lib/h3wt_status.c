/*
 * h3wt_status: the reason phrases of HTTP status codes (RFC 9110 15), for
 * the library's own error bodies and the demo's HTTP/1.1 listener.  A
 * file of its own so that code outside the server (the listener's fuzzer)
 * can have it without the rest.
 */
#include "h3wt/h3wt.h"

const char *h3wt_status_text(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 425:
    return "Too Early";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return "";
  }
}
