/* recovery: start-up verdicts on job directories. See recovery.h. */
#include "recovery.h"

#include <errno.h>

enum recovery_verdict recovery_judge(const struct recovery_facts *f)
{
	if (f->status == 0)
		return RECOVERY_EXITED;
	if (f->status < 0 && f->status != -ENOENT)
		return RECOVERY_DAMAGED;
	if (f->started)
		return f->locked ? RECOVERY_ATTACH : RECOVERY_LOST;
	if (f->locked || f->waited_ms < RECOVERY_GRACE_MS)
		return RECOVERY_WAIT;
	return RECOVERY_DROP;
}

uint64_t recovery_end_mono(uint64_t end_real_ns, uint64_t now_real_ns, uint64_t now_mono_ns)
{
	uint64_t ago = end_real_ns && end_real_ns < now_real_ns ? now_real_ns - end_real_ns : 0;
	return ago < now_mono_ns ? now_mono_ns - ago : 0;
}
