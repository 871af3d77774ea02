package recsys.flink;

import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * A keyed aggregate that emits each changed key's row once per emit interval instead of a
 * row per event: input updates the key's state at once and marks the key; at the end of each
 * interval ({@code emitIntervalMs}, aligned to the wall clock) the marked keys' rows are
 * encoded from their state and emitted, then the marks are forgotten.
 *
 * <p>The marks are not state: right before each checkpoint barrier every marked row is
 * emitted ({@link #prepareSnapshotPreBarrier}), so a checkpoint never holds a row that was
 * not sent; after a restore, the events replayed from the source offsets mark their keys
 * again. One processing-time callback per interval for the whole operator, not a timer per
 * key (what the upsert sink's reducing buffer did, but encoding only the rows it sends).
 *
 * @param <IN> input records
 * @param <OUT> the main output (to the next aggregate); rows go to {@link #rows}
 */
abstract class EmittingOperator<IN, OUT> extends AbstractStreamOperator<OUT>
        implements OneInputStreamOperator<IN, OUT>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;
    protected final JobSettings settings;
    private final OutputTag<FeatureRow> rows;
    /** Marked keys -> what changed (bits the subclass defines). */
    private transient LinkedHashMap<String, int[]> marked;
    private transient boolean timerSet;
    private transient StreamRecord<OUT> outRecord;
    private transient StreamRecord<FeatureRow> rowRecord;

    EmittingOperator(JobSettings settings, OutputTag<FeatureRow> rows) {
        this.settings = settings;
        this.rows = rows;
    }

    @Override
    public void open() throws Exception {
        super.open();
        marked = new LinkedHashMap<>();
        outRecord = new StreamRecord<>(null);
        rowRecord = new StreamRecord<>(null);
    }

    /** Marks {@code key} (with what changed): its row(s) go out at the end of the interval. */
    protected final void mark(String key, int changed) throws Exception {
        int[] bits = marked.get(key);
        if (bits == null) {
            marked.put(key, new int[] {changed});
        } else {
            bits[0] |= changed;
        }
        armTimer();
        if (marked.size() >= settings.emitMaxRows) {
            flush();
        }
    }

    /** Makes sure the end of the current interval calls {@link #emit} / {@link #emitted}. */
    protected final void armTimer() {
        if (!timerSet) {
            long now = getProcessingTimeService().getCurrentProcessingTime();
            long interval = settings.emitIntervalMs;
            getProcessingTimeService().registerTimer((now / interval + 1) * interval, this);
            timerSet = true;
        }
    }

    /** Sends a record to the next aggregate. */
    protected final void forward(OUT value) {
        output.collect(outRecord.replace(value));
    }

    /** Sends an encoded row to the features topic. */
    protected final void emitRow(String key, byte[] row) {
        output.collect(rows, rowRecord.replace(new FeatureRow(
                key.getBytes(java.nio.charset.StandardCharsets.UTF_8), row)));
    }

    /** Emits the row(s) of one marked key ({@code changed}: the bits it was marked with). */
    protected abstract void emit(String key, int changed) throws Exception;

    /** Called after the marked keys were emitted (for rows kept outside keyed state). */
    protected void emitted() throws Exception {}

    @Override
    public void onProcessingTime(long time) throws Exception {
        timerSet = false;
        flush();
    }

    /** Emits every marked row now. */
    protected final void flush() throws Exception {
        if (!marked.isEmpty()) {
            for (Map.Entry<String, int[]> e : marked.entrySet()) {
                emit(e.getKey(), e.getValue()[0]);
            }
            marked.clear();
        }
        emitted();
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        flush();
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }
}
