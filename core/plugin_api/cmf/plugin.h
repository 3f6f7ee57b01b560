/* The plugin ABI: how a shared module adds stages that `cmf run` executes.
 *
 * A plugin is a shared module (a Meson shared_module) that exports one C
 * function, cmf_plugin_entry. The host calls it once, right after dlopen, with
 * its own ABI version; the plugin returns a description of itself and of its
 * stages that stays valid (static storage) while the module is loaded, or NULL
 * when it cannot serve that host. Each stage declares its parameters (name,
 * type, default, help, allowed values): the host parses and validates the
 * command line against them, generates `cmf run STAGE --help`, records every
 * parameter on the execution, and only then calls the stage's run function.
 *
 * The run function talks to cmf only through the cmf_host table it receives
 * with an opaque cmf_context: parameters, logging of inputs, outputs, step
 * metrics and properties, progress, and cancellation (Ctrl-C). A stage never
 * writes SQL or files of the repository itself. Everything the host hands out
 * is owned by the host and valid until the run function returns; strings are
 * UTF-8 and NUL-terminated. The host calls a run function on one thread, and
 * the host functions must be called from that thread too.
 *
 * Versioning: CMF_PLUGIN_ABI_VERSION (2: short parameter names, artifacts of
 * the store) changes whenever a struct below changes
 * in a way an old plugin or an old host would misread. The host skips (with a
 * warning that names the module) a module whose cmf_plugin.abi_version differs
 * from its own, or that lacks the entry point. cmf_host.size lets a later
 * minor revision append functions: a plugin checks size before calling a
 * member that an older host may lack.
 *
 * plugin_cpp.h offers a C++ wrapper over this table. */
#ifndef CMF_PLUGIN_H_
#define CMF_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CMF_PLUGIN_ABI_VERSION 2u

/* The name of the one symbol every plugin exports. */
#define CMF_PLUGIN_ENTRY_SYMBOL "cmf_plugin_entry"

/* The type of a stage parameter, as the command line gives it. */
typedef enum cmf_param_type {
  CMF_PARAM_INT = 1,    /* a 64-bit integer: 12, -3 */
  CMF_PARAM_REAL = 2,   /* a double: 0.01, 1e-3 */
  CMF_PARAM_BOOL = 3,   /* true/false/yes/no/1/0; a bare --NAME means true */
  CMF_PARAM_STRING = 4, /* any text (a choice when allowed is set) */
  CMF_PARAM_PATH = 5    /* a file or directory path, or an artifact id */
} cmf_param_type;

/* cmf_param.flags */
#define CMF_PARAM_MULTIPLE                                              \
  1u                          /* takes several values: --NAME a b c, or \
                                 --NAME a --NAME b */
#define CMF_PARAM_REQUIRED 2u /* has no default: the run is refused without */

typedef struct cmf_param {
  const char* name; /* --NAME on the command line: [a-z0-9-]+ */
  cmf_param_type type;
  const char* default_value;  /* its text form; NULL or "" when none */
  const char* help;           /* one line */
  const char* const* allowed; /* NULL-terminated list of allowed values, or
                                 NULL for any value of the type */
  uint32_t flags;             /* CMF_PARAM_* flags */
  const char* short_name;     /* one letter for -X on the command line, or
                                 NULL (since ABI version 2) */
} cmf_param;

/* One run of a stage, owned by the host. */
typedef struct cmf_context cmf_context;

/* Status codes of the host functions that can fail. */
#define CMF_OK 0
#define CMF_ERROR (-1) /* cmf_host.last_error says why */

enum cmf_message_level { CMF_INFO = 0, CMF_WARNING = 1 };

typedef struct cmf_host {
  uint32_t abi_version; /* CMF_PLUGIN_ABI_VERSION of the host */
  uint32_t size;        /* sizeof(cmf_host) as the host was built */

  /* Parameters, already validated against the stage's schema. param returns
   * the value's text (the default when the user gave none; NULL when the
   * parameter has neither); for a CMF_PARAM_MULTIPLE parameter, param_count
   * and param_at give each value (param gives the first). A bool is "true" or
   * "false". */
  const char* (*param)(cmf_context* ctx, const char* name);
  size_t (*param_count)(cmf_context* ctx, const char* name);
  const char* (*param_at)(cmf_context* ctx, const char* name, size_t index);

  /* The execution being recorded (a UUID) and the workspace's root. */
  const char* (*execution_id)(cmf_context* ctx);
  const char* (*workspace)(cmf_context* ctx);

  /* Records the file or directory at PATH (relative to the current directory,
   * or absolute) as an input or an output of the execution. KIND is
   * "dataset", "dataslice", "model", "metrics", "file" or "directory", or NULL
   * to let cmf guess from the path. An output's content is also stored in the
   * object cache. On success writes the content hash (64 hex digits and a
   * NUL) to HASH_OUT when it is not NULL. */
  int (*log_input)(cmf_context* ctx, const char* path, const char* kind,
                   char hash_out[65]);
  int (*log_output)(cmf_context* ctx, const char* path, const char* kind,
                    char hash_out[65]);
  /* Records that the artifact CHILD_HASH derives from PARENT_HASH (both
   * logged already). */
  int (*log_derived_from)(cmf_context* ctx, const char* child_hash,
                          const char* parent_hash);
  /* One step of a step-metric series; a step logged again replaces it. */
  int (*log_metric)(cmf_context* ctx, const char* series, int64_t step,
                    double value);
  /* A typed property of the execution; a later value replaces an earlier. */
  int (*set_property_int)(cmf_context* ctx, const char* name, int64_t value);
  int (*set_property_real)(cmf_context* ctx, const char* name, double value);
  int (*set_property_text)(cmf_context* ctx, const char* name,
                           const char* value);

  /* Progress of the run, DONE of TOTAL units (TOTAL 0: unknown), with a short
   * note ("step 12/100"). Shown on a terminal only; never fails. */
  void (*progress)(cmf_context* ctx, double done, double total,
                   const char* note);
  /* A line for the user on standard error ("cmf: dkl-al: ..."). */
  void (*message)(cmf_context* ctx, int level, const char* text);

  /* Nonzero once the user asked the run to stop (Ctrl-C, SIGTERM). A stage
   * polls it between steps and returns soon after; what it logged so far is
   * kept and the execution is recorded as interrupted. */
  int (*cancelled)(cmf_context* ctx);

  /* Sets the message recorded (and printed) when the run function returns
   * nonzero: why the stage failed. */
  void (*fail)(cmf_context* ctx, const char* message);
  /* Why the last host function that returned CMF_ERROR failed. */
  const char* (*last_error)(cmf_context* ctx);

  /* A readable file for REF: a path (relative to the current directory, or
   * absolute) when one exists, else an artifact of the store named by its
   * hash or a unique prefix of it, whose bytes are read from the object cache
   * (fetched from a remote first when only a remote has them). Writes the
   * file's path (NUL-terminated) to PATH_OUT, of PATH_SIZE bytes, and its
   * content hash to HASH_OUT when not NULL. */
  int (*resolve_artifact)(cmf_context* ctx, const char* ref, char* path_out,
                          size_t path_size, char hash_out[65]);
  /* Calls EACH once per output artifact of KIND (NULL: any) of every
   * successful execution of STAGE (in PIPELINE, or any pipeline when NULL),
   * oldest execution first, with its hash, the path it was recorded at and the
   * execution's id. */
  int (*stage_outputs)(cmf_context* ctx, const char* stage,
                       const char* pipeline, const char* kind,
                       void (*each)(void* user, const char* hash,
                                    const char* path, const char* execution),
                       void* user);
  /* Records the artifact HASH, already in the store (as resolve_artifact or
   * stage_outputs name it), as an input of the execution, seen at PATH (as
   * another run recorded it; NULL: the hash stands for the path). */
  int (*log_input_hash)(cmf_context* ctx, const char* hash, const char* path);
} cmf_host;

/* Runs a stage. Returns 0 when it succeeded; anything else records the
 * execution as failed with the message given to cmf_host.fail (or interrupted,
 * when cancelled() had become nonzero). */
typedef int (*cmf_stage_run_fn)(const cmf_host* host, cmf_context* ctx);

typedef struct cmf_stage {
  const char* name;    /* `cmf run NAME`: [a-z0-9-]+, unique over plugins */
  const char* summary; /* one line */
  const cmf_param* params;
  size_t param_count;
  cmf_stage_run_fn run;
} cmf_stage;

typedef struct cmf_plugin {
  uint32_t abi_version; /* CMF_PLUGIN_ABI_VERSION the plugin was built with */
  const char* name;     /* "dkl" */
  const char* version;  /* the plugin's own version, recorded on executions */
  const char* summary;  /* one line */
  const cmf_stage* stages;
  size_t stage_count;
} cmf_plugin;

/* The entry point every plugin exports (declared here so that a plugin's
 * definition is checked against it). HOST_ABI_VERSION is the host's
 * CMF_PLUGIN_ABI_VERSION. */
typedef const cmf_plugin* (*cmf_plugin_entry_fn)(uint32_t host_abi_version);

#if defined(__GNUC__)
#define CMF_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define CMF_PLUGIN_EXPORT
#endif

CMF_PLUGIN_EXPORT const cmf_plugin* cmf_plugin_entry(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* CMF_PLUGIN_H_ */
