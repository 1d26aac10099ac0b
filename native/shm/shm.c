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
 *   add(a, b, divisor, out1, out2?) -> out1[i] (and out2[i]) = (a[i] + b[i]) / divisor, float32 views of equal
 *   length, any of them in a mapping. The ring's sum reads the predecessor's partial straight from its mapping and
 *   writes the result straight into this rank's own; the WebAssembly kernel (native/sum) would need both operands
 *   copied into its memory and the result copied out. One IEEE single add (and divide when divisor != 1) per
 *   element, as the JS and WebAssembly versions: bit-identical results (no -ffast-math, no FMA to contract).
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

static float *float_view(napi_env env, napi_value v, size_t *length) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  napi_typedarray_type type;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, length, &data, NULL, NULL) != napi_ok || type != napi_float32_array) return NULL;
  return (float *)data;
}

/* out2 may be b itself (the owner of a segment keeps the result in its own array): each element is read
   before it is written, and the compiler checks the overlap at run time before it vectorises */
static void add_into(const float *a, const float *b, float d, float *out1, float *out2, size_t n) {
  if (d == 1.0f) {
    if (out2) for (size_t i = 0; i < n; i++) { float v = a[i] + b[i]; out1[i] = v; out2[i] = v; }
    else for (size_t i = 0; i < n; i++) out1[i] = a[i] + b[i];
  } else {
    if (out2) for (size_t i = 0; i < n; i++) { float v = (a[i] + b[i]) / d; out1[i] = v; out2[i] = v; }
    else for (size_t i = 0; i < n; i++) out1[i] = (a[i] + b[i]) / d;
  }
}

static napi_value add(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, NULL, "add(a, b, divisor, out1, out2?)");
    return NULL;
  }
  size_t na, nb, n1, n2 = 0;
  float *a = float_view(env, argv[0], &na), *b = float_view(env, argv[1], &nb), *o1 = float_view(env, argv[3], &n1);
  float *o2 = NULL;
  napi_valuetype t = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &t);
  if (t != napi_undefined) o2 = float_view(env, argv[4], &n2);
  double d;
  if (!a || !b || !o1 || (t != napi_undefined && !o2) || napi_get_value_double(env, argv[2], &d) != napi_ok ||
      nb != na || n1 != na || (o2 && n2 != na)) {
    napi_throw_type_error(env, NULL, "add(a, b, divisor, out1, out2?): Float32Arrays of one length and a number");
    return NULL;
  }
  add_into(a, b, (float)d, o1, o2, na);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "map", NAPI_AUTO_LENGTH, map, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "map", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "add", NAPI_AUTO_LENGTH, add, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "add", fn) != napi_ok) return NULL;
  return exports;
}
