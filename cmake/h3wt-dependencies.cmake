# What libh3wt links, as pkg-config imported targets (PkgConfig::H3WT_*).
# One list for the build (CMakeLists.txt) and for the installed CMake
# package (h3wt-config.cmake includes this file), so the targets that the
# exported h3wt::h3wt names exist wherever it is used.
#
# wolfSSL (with QUIC) and ngtcp2 (with its wolfSSL crypto layer) come from
# the private prefix scripts/bootstrap.sh builds, found through
# CMAKE_PREFIX_PATH; nghttp3 and libuv from the system.  Their .pc files
# name no Requires of their own, hence all four here.
#
# Leaves the modules it could not find in H3WT_DEPS_MISSING; the caller
# decides whether that is fatal.  Needs find_package(PkgConfig) first.

set(H3WT_DEPS_MISSING "")

# Look below CMAKE_PREFIX_PATH whatever the caller's cmake_minimum_required
# (below 3.1 pkg_check_modules would not).
set(_h3wt_saved_use_prefix_path "${PKG_CONFIG_USE_CMAKE_PREFIX_PATH}")
set(PKG_CONFIG_USE_CMAKE_PREFIX_PATH ON)

macro(_h3wt_dependency prefix)
  if(NOT TARGET PkgConfig::${prefix})
    pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${ARGN})
  endif()
  if(NOT TARGET PkgConfig::${prefix})
    list(APPEND H3WT_DEPS_MISSING ${ARGN})
  endif()
endmacro()

_h3wt_dependency(H3WT_NGTCP2 libngtcp2_crypto_wolfssl libngtcp2)
_h3wt_dependency(H3WT_WOLFSSL wolfssl)
_h3wt_dependency(H3WT_NGHTTP3 libnghttp3>=1.0)
_h3wt_dependency(H3WT_LIBUV libuv)
# hiredis: the build looks for it itself (optional there); an installed
# package that was built with it needs it (h3wt-config.cmake sets this).
if(H3WT_HIREDIS_REQUIRED)
  _h3wt_dependency(H3WT_HIREDIS hiredis)
endif()

# The static libwolfssl.a needs libm, which wolfssl.pc lists only under
# Libs.private (pkg_check_modules reads Libs alone), and libpthread for its
# mutexes before glibc 2.34.  Named on its target so they come after it on
# a static link line.
if(TARGET PkgConfig::H3WT_WOLFSSL)
  get_target_property(_h3wt_libs PkgConfig::H3WT_WOLFSSL
                      INTERFACE_LINK_LIBRARIES)
  if(NOT "m" IN_LIST _h3wt_libs)
    set_property(TARGET PkgConfig::H3WT_WOLFSSL APPEND PROPERTY
                 INTERFACE_LINK_LIBRARIES m pthread)
  endif()
  unset(_h3wt_libs)
endif()

set(PKG_CONFIG_USE_CMAKE_PREFIX_PATH "${_h3wt_saved_use_prefix_path}")
unset(_h3wt_saved_use_prefix_path)
