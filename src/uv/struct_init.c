/* The public init functions of the driver's options and callbacks structs
 * (see src/abi.h and docs/API.md, "Options structs"). */
#include "abi.h"
#include "shoal/command.h"
#include "shoal/proc.h"
#include "shoal/uv.h"
#include "shoal/uv_server.h"

SHOAL__INIT_FN(shoal_uv_options)
SHOAL__INIT_FN(shoal_uv_callbacks)
SHOAL__INIT_FN(shoal_child_options)
SHOAL__INIT_FN(shoal_child_callbacks)
SHOAL__INIT_FN(shoal_proc_options)
SHOAL__INIT_FN(shoal_uv_penalties)
SHOAL__INIT_FN(shoal_uv_server_options)
SHOAL__INIT_FN(shoal_uv_server_callbacks)
