/* Numbered fault injection for libgmighost's allocations and I/O (tests arm it). */
#include "fault.h"

/* Points left before the failure; 0 when disarmed. */
static unsigned countdown;
static bool fired;

void gmig_fault_arm(unsigned n)
{
	countdown = n;
	fired = false;
}

bool gmig_fault(void)
{
	if (!countdown || --countdown)
		return false;
	fired = true;
	return true;
}

bool gmig_fault_fired(void)
{
	return fired;
}
