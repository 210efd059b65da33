/* luanet.h compiles as strict C99 with every warning an error. */
#include <luanet.h>

int header_c99_compiles(void) { return (int)LUANET_OK; }
