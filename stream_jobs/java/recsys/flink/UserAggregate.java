package recsys.flink;

import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * Per user (keyed by user id): the user's {@link ActivityAcc} (windows, recent items,
 * category affinity, the partners of each event). Every event goes on to its item's
 * aggregate with the partners found for it, and each partner gets the pair the other way
 * round; the user's row ({@code user} stream) is emitted once per interval.
 */
final class UserAggregate extends EmittingOperator<Event, ItemUpdate> {
    private static final long serialVersionUID = 1L;
    static final OutputTag<FeatureRow> ROWS = new OutputTag<>("user-rows", FeatureRow.TYPE);

    private transient ValueState<ActivityAcc> state;
    private transient RowEncoder encoder;

    UserAggregate(JobSettings settings) {
        super(settings, ROWS);
    }

    @Override
    public void open() throws Exception {
        super.open();
        state = getPartitionedState(
                new ValueStateDescriptor<>("user-activity", new StateSerializers.Activity()));
        encoder = new RowEncoder("user", settings.streamSpecs.get("user"),
                settings.streamValues.get("user"), settings.windowsMs.length, settings.types(),
                settings.pairKinds());
    }

    @Override
    public void processElement(StreamRecord<Event> record) throws Exception {
        Event e = record.getValue();
        ActivityAcc acc = state.value();
        if (acc == null) {
            acc = settings.newActivity(true);
        }
        acc.add(e.idHash, e.type, e.ts, e.produced, e.itemId, e.category, settings.windowsMs,
                settings.weights, settings.halfLifeMs, settings.pairing);
        state.update(acc);
        mark(e.userId, 1);

        ItemUpdate event = new ItemUpdate();
        event.item = e.itemId;
        event.isEvent = true;
        event.idHash = e.idHash;
        event.type = e.type;
        event.ts = e.ts;
        event.produced = e.produced;
        event.category = e.category;
        String[] partners = acc.partners;
        if (partners.length > 0) {
            event.pairKind = acc.pairKind;
            event.partners = partners;
            event.pairTs = acc.newest;
            event.pairProduced = acc.produced;
        }
        forward(event);
        for (String partner : partners) {
            ItemUpdate pair = new ItemUpdate();
            pair.item = partner;
            pair.pairKind = acc.pairKind;
            pair.partners = new String[] {e.itemId};
            pair.pairTs = acc.newest;
            pair.pairProduced = acc.produced;
            forward(pair);
        }
    }

    @Override
    protected void emit(String user, int changed) throws Exception {
        setCurrentKey(user);
        ActivityAcc acc = state.value();
        ActivityAcc.Affinity affinity = encoder.needsAffinity
                ? acc.affinity(settings.weights, settings.affinityTop) : null;
        emitRow(user, encoder.encode(user, acc, affinity));
    }
}
