/* Protocol version negotiation: both sides announce a range and agree on the highest common version. */
#ifndef GMIG_VERSION_H
#define GMIG_VERSION_H

#include <stdint.h>

/*
 * Agrees on the highest version both [a_min, a_max] and [b_min, b_max]
 * contain. Returns 0 with *out set, -EINVAL for an empty or zero range,
 * -EPROTONOSUPPORT when the ranges do not meet.
 */
int gmig_version_agree(uint16_t a_min, uint16_t a_max, uint16_t b_min, uint16_t b_max,
		       uint16_t *out);

#endif
