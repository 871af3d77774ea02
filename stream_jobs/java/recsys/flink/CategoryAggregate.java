package recsys.flink;

import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * Per category (keyed by category): the {@link CategoryState}. Each item row updates the
 * category total and fixes the item's share at that moment; the newest share of each item
 * ({@code item_category} stream, keyed by item) is emitted once per interval.
 */
final class CategoryAggregate extends EmittingOperator<CategoryUpdate, Void> {
    private static final long serialVersionUID = 1L;
    static final OutputTag<FeatureRow> ROWS = new OutputTag<>("category-rows", FeatureRow.TYPE);

    /** An item's newest share, waiting for the end of the interval. */
    private static final class Share {
        final long eventTimeMs;
        final long produced;
        final long n;
        final double share;

        Share(long eventTimeMs, long produced, long n, double share) {
            this.eventTimeMs = eventTimeMs;
            this.produced = produced;
            this.n = n;
            this.share = share;
        }
    }

    private transient ValueState<CategoryState> state;
    private transient RowEncoder encoder;
    private transient LinkedHashMap<String, Share> shares;

    CategoryAggregate(JobSettings settings) {
        super(settings, ROWS);
    }

    @Override
    public void open() throws Exception {
        super.open();
        state = getPartitionedState(
                new ValueStateDescriptor<>("category-share", new StateSerializers.Category()));
        encoder = new RowEncoder("item_category", settings.streamSpecs.get("item_category"),
                settings.streamValues.get("item_category"), settings.windowsMs.length,
                settings.types(), settings.pairKinds());
        shares = new LinkedHashMap<>();
    }

    @Override
    public void processElement(StreamRecord<CategoryUpdate> record) throws Exception {
        CategoryUpdate u = record.getValue();
        CategoryState s = state.value();
        if (s == null) {
            s = new CategoryState();
        }
        double share = s.update(u.item, u.popularity, u.lastEventMs, settings.halfLifeMs);
        state.update(s);
        shares.put(u.item, new Share(u.lastEventMs, u.produced, u.n, share));
        armTimer();
        if (shares.size() >= settings.emitMaxRows) {
            flush();
        }
    }

    @Override
    protected void emit(String category, int changed) {
        // never marked: rows are per item, kept in `shares` (below)
    }

    @Override
    protected void emitted() {
        for (Map.Entry<String, Share> e : shares.entrySet()) {
            Share s = e.getValue();
            emitRow(e.getKey(), encoder.encode(e.getKey(), s.eventTimeMs, s.produced, s.n,
                    s.share));
        }
        shares.clear();
    }
}
