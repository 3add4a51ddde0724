/*
 * fuzz_control.c - fuzz target "control": the control file as
 * control_decode (recovery/control.c) checks it for wd_open, `walden
 * controldata` and `walden inspect`. A file it accepts must encode back to
 * the same bytes' meaning: control_encode of what it decoded decodes to
 * the same fields.
 *
 * Input: mode byte, then the file's bytes.
 *   bit 0 (FZ_FIX)  store the correct CRC first (of a 512-byte file)
 *   bit 1           pass the input's own length (else padded or cut to
 *                   the 512 bytes of a control file)
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz/fuzz.h"
#include "recovery/control.h"
#include "storage/bytes.h"

const char fz_target_name[] = "control";

#define CRC_OFF (CONTROL_SIZE - 4u)

/* Every field of a and b equal. */
static int same(const control_data *a, const control_data *b)
{
	return a->version == b->version && a->page_size == b->page_size &&
	       memcmp(a->db_id, b->db_id, sizeof a->db_id) == 0 && a->state == b->state &&
	       a->wal_segment_size == b->wal_segment_size &&
	       a->checkpoint_lsn == b->checkpoint_lsn && a->redo_lsn == b->redo_lsn &&
	       a->next_xid == b->next_xid && a->next_relid == b->next_relid &&
	       a->flags == b->flags && a->update_time == b->update_time;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_input in = fz_input_split(data, size);
	size_t len = (in.mode & 2) ? in.len : CONTROL_SIZE;
	uint8_t *buf = fz_copy_padded(&in, len > CONTROL_SIZE ? len : CONTROL_SIZE);
	uint8_t again[CONTROL_SIZE];
	control_data cd, cd2;
	char id[33];

	/* the CRC: zlib crc32 of bytes [0, 508), at 508 (recovery/README.md) */
	if (in.mode & FZ_FIX)
		put_le32(buf + CRC_OFF, (uint32_t)crc32(0, buf, CRC_OFF));
	fz_clear_error();
	if (fz_check_rc(control_decode(buf, len, "control", &cd), 0, "control_decode") == 0) {
		fz_accepted++;
		control_format_id(cd.db_id, id);
		if (strlen(id) != 32 || !control_state_name(cd.state))
			abort();
		control_encode(&cd, again);
		if (control_decode(again, CONTROL_SIZE, "control", &cd2) != 0 || !same(&cd, &cd2))
			abort(); /* what was read does not write back */
	}
	free(buf);
	return 0;
}
