/* libuv driver placeholder: filled in by the driver slice. */
#include <uv.h>
int shoal__uv_placeholder(void);
int shoal__uv_placeholder(void) { return 0; }
