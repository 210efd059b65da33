// luanet.h compiles as C++ (extern "C") with every warning an error.
#include <luanet.h>

int header_cxx_compiles() { return static_cast<int>(LUANET_OK) + (luanet_version() != nullptr ? 0 : 1); }
