package recsys.flink;

import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * Per item (keyed by item id): the item's {@link ActivityAcc} (windows, popularity) and its
 * {@link PairState} (co-view / co-purchase partner counts). After each of its events the
 * item's popularity goes on to its category's aggregate; once per interval the changed
 * item's {@code item} row and, if its pairs changed, its {@code item_pairs} row are emitted.
 */
final class ItemAggregate extends EmittingOperator<ItemUpdate, CategoryUpdate> {
    private static final long serialVersionUID = 1L;
    static final OutputTag<FeatureRow> ROWS = new OutputTag<>("item-rows", FeatureRow.TYPE);
    private static final int ACTIVITY = 1, PAIRS = 2;

    private transient ValueState<ActivityAcc> activity;
    private transient ValueState<PairState> pairs;
    private transient RowEncoder itemEncoder;
    private transient RowEncoder pairEncoder;

    ItemAggregate(JobSettings settings) {
        super(settings, ROWS);
    }

    @Override
    public void open() throws Exception {
        super.open();
        activity = getPartitionedState(
                new ValueStateDescriptor<>("item-activity", new StateSerializers.Activity()));
        pairs = getPartitionedState(
                new ValueStateDescriptor<>("item-pairs", new StateSerializers.Pairs()));
        int windows = settings.windowsMs.length;
        itemEncoder = new RowEncoder("item", settings.streamSpecs.get("item"),
                settings.streamValues.get("item"), windows, settings.types(), settings.pairKinds());
        pairEncoder = new RowEncoder("item_pairs", settings.streamSpecs.get("item_pairs"),
                settings.streamValues.get("item_pairs"), windows, settings.types(),
                settings.pairKinds());
    }

    @Override
    public void processElement(StreamRecord<ItemUpdate> record) throws Exception {
        ItemUpdate u = record.getValue();
        if (u.isEvent) {
            ActivityAcc acc = activity.value();
            if (acc == null) {
                acc = settings.newActivity(false);
            }
            acc.add(u.idHash, u.type, u.ts, u.produced, null, u.category, settings.windowsMs,
                    settings.weights, settings.halfLifeMs, null);
            activity.update(acc);
            mark(u.item, ACTIVITY);
            if (acc.category != null) { // duplicates too: the share is taken again
                CategoryUpdate c = new CategoryUpdate();
                c.category = acc.category;
                c.item = u.item;
                c.popularity = acc.popularity;
                c.lastEventMs = acc.newest;
                c.produced = acc.produced;
                c.n = acc.accepted;
                forward(c);
            }
        }
        if (u.pairKind >= 0 && u.partners.length > 0) {
            PairState s = pairs.value();
            if (s == null) {
                s = new PairState(settings.pairKinds());
            }
            s.add(u.pairKind, u.partners, u.pairTs, u.pairProduced, settings.pairCapacity,
                    settings.pairTop);
            pairs.update(s);
            mark(u.item, PAIRS);
        }
    }

    @Override
    protected void emit(String item, int changed) throws Exception {
        setCurrentKey(item);
        if ((changed & ACTIVITY) != 0) {
            emitRow(item, itemEncoder.encode(item, activity.value(), null));
        }
        if ((changed & PAIRS) != 0) {
            emitRow(item, pairEncoder.encode(item, pairs.value()));
        }
    }
}
