# cmake -DHEADER=h3wt.h -DOUTPUT=h3wt.map -P h3wt-exports.cmake
#
# Writes the linker version script of the shared library: every function
# the public header declares is global, everything else local.  So the .so
# exports the API and nothing of the internal modules (h3wt_quic_*,
# h3wt_wt_*, ...) or of the static wolfSSL and ngtcp2 linked into it, which
# would otherwise clash with a host's own copies.  Generated from the header
# so that a new public call needs no second list to be kept in step.

file(READ "${HEADER}" text)
# Comments mention calls ("see h3wt_server_close()"): drop them first.
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" text "${text}")
string(REGEX REPLACE "//[^\n]*" "" text "${text}")
# Preprocessor lines, with their continuations: a function-like macro
# ("#define h3wt_server_route(...)" over a _versioned call) is not a symbol.
string(REGEX REPLACE "\n[ \t]*#([^\n]*\\\\\n)*[^\n]*" "\n" text "\n${text}")
# A declaration: a name followed by its parameter list.  Function-pointer
# typedefs ("(*h3wt_log_cb)(") and macros (upper case) do not match.
string(REGEX MATCHALL "[^A-Za-z0-9_]h3wt_[a-z0-9_]+[ \t\n]*\\(" calls "${text}")
set(names "")
foreach(c IN LISTS calls)
  string(REGEX REPLACE "^.(h3wt_[a-z0-9_]+).*$" "\\1" n "${c}")
  list(APPEND names "${n}")
endforeach()
list(REMOVE_DUPLICATES names)
list(SORT names)
if(NOT names)
  message(FATAL_ERROR "no function declarations found in ${HEADER}")
endif()

set(map "/* Generated from h3wt.h by cmake/h3wt-exports.cmake. */\n{\n  global:\n")
foreach(n IN LISTS names)
  string(APPEND map "    ${n};\n")
endforeach()
string(APPEND map "  local:\n    *;\n};\n")
# Rewrite only on change, so the library is not relinked for nothing.
file(WRITE "${OUTPUT}.tmp" "${map}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
