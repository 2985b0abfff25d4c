/* Numbered fault injection for gmig-agent's allocations and output (armed by the tests). */
#include <stdlib.h>

#include "fault.h"

static unsigned int countdown;	/* points left before the failure; 0: disarmed */
static unsigned int passed;	/* points passed since start */

void fault_arm(unsigned int n)
{
	countdown = n;
}

unsigned int fault_passed(void)
{
	return passed;
}

bool fault_hit(void)
{
	passed++;
	if (!countdown || --countdown)
		return false;
	return true;
}

void *fault_malloc(size_t n)
{
	return fault_hit() ? NULL : malloc(n);
}

void *fault_calloc(size_t n, size_t size)
{
	return fault_hit() ? NULL : calloc(n, size);
}
