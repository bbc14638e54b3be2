/* qosd daemon native helper: the peer credentials (SO_PEERCRED) of a connected Unix socket.
 * Node cannot read them; the daemon needs them because a client's own claims are not trusted. */
#define _GNU_SOURCE
#include <node_api.h>
#include <sys/socket.h>

static napi_value peercred(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	int32_t fd = -1;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
		napi_throw_type_error(env, NULL, "peercred(fd): fd must be a number");
		return NULL;
	}
	struct ucred c;
	socklen_t l = sizeof c;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l) != 0) {
		napi_get_null(env, &out);
		return out;
	}
	napi_create_object(env, &out);
	napi_create_int32(env, c.pid, &v);
	napi_set_named_property(env, out, "pid", v);
	napi_create_uint32(env, c.uid, &v);
	napi_set_named_property(env, out, "uid", v);
	napi_create_uint32(env, c.gid, &v);
	napi_set_named_property(env, out, "gid", v);
	return out;
}

NAPI_MODULE_INIT()
{
	napi_value fn;
	napi_create_function(env, "peercred", NAPI_AUTO_LENGTH, peercred, NULL, &fn);
	napi_set_named_property(env, exports, "peercred", fn);
	return exports;
}
