/* Protocol version negotiation. */
#include <errno.h>

#include "gmig/version.h"

int gmig_version_agree(uint16_t a_min, uint16_t a_max, uint16_t b_min, uint16_t b_max,
		       uint16_t *out)
{
	uint16_t lo, hi;

	if (!a_min || !b_min || a_min > a_max || b_min > b_max)
		return -EINVAL;
	lo = a_min > b_min ? a_min : b_min;
	hi = a_max < b_max ? a_max : b_max;
	if (lo > hi)
		return -EPROTONOSUPPORT;
	*out = hi;
	return 0;
}
