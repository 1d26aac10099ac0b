/*
 * mmap for Node: the one system call the collectives need that neither Node nor a registry-installable package
 * provides (mmap-io and friends compile with node-gyp at install, which downloads Node's headers: not possible on
 * machines that reach only the package registries). Built with build.sh; the binary is committed under
 * prebuilt/ and loaded by worker/collectives/shm_map.ts, which falls back to pread/pwrite when it cannot load.
 *
 *   map(fd, bytes, writable, allocate) -> ArrayBuffer over a MAP_SHARED mapping of the file (unmapped when the
 *   ArrayBuffer is garbage-collected). allocate: posix_fallocate first, so that a full tmpfs is an error here
 *   (ENOSPC) rather than a SIGBUS on a later store into the mapping.
 *
 * Node-API version 8: the same binary loads in every Node release since 12.22.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

static void unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value fail(napi_env env, const char *what, int err) {
  char code[32];
  const char *name = err == ENOSPC ? "ENOSPC" : err == ENOMEM ? "ENOMEM" : err == EBADF ? "EBADF" : err == EACCES ? "EACCES" : "EIO";
  strncpy(code, name, sizeof code - 1);
  code[sizeof code - 1] = 0;
  char msg[160];
  strncpy(msg, what, 60);
  msg[60] = 0;
  strcat(msg, ": ");
  strncat(msg, strerror(err), 90);
  napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value map(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4) {
    napi_throw_type_error(env, NULL, "map(fd, bytes, writable, allocate)");
    return NULL;
  }
  int32_t fd;
  int64_t bytes;
  bool writable, allocate;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &bytes) != napi_ok ||
      napi_get_value_bool(env, argv[2], &writable) != napi_ok || napi_get_value_bool(env, argv[3], &allocate) != napi_ok ||
      bytes <= 0) {
    napi_throw_type_error(env, NULL, "map(fd: int, bytes: positive int, writable: bool, allocate: bool)");
    return NULL;
  }
  if (allocate) {
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    if (err != 0) return fail(env, "posix_fallocate", err);
  }
  void *p = mmap(NULL, (size_t)bytes, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail(env, "mmap", errno);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)bytes, unmap, (void *)(uintptr_t)bytes, &ab) != napi_ok) {
    munmap(p, (size_t)bytes);
    napi_throw_error(env, NULL, "napi_create_external_arraybuffer failed");
    return NULL;
  }
  return ab;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "map", NAPI_AUTO_LENGTH, map, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "map", fn) != napi_ok) return NULL;
  return exports;
}
