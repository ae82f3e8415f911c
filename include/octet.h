#include "octet/ops.h"
