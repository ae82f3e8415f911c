#include "octet/ops.h"
#include "octet/qat.h"
