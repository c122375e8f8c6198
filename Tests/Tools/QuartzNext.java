// Next fire times from Quartz 2.3.2 itself (Debian's libquartz2-java), for the differential
// cron test. Reads lines "expression<TAB>after epoch ms<TAB>IANA zone<TAB>count" on stdin and
// prints, per line, the next `count` fire times (epoch ms, space-separated), "never" when
// there are none, or "error <message>" when Quartz refuses the expression.
// Run: java -cp /usr/share/java/quartz2.jar Tests/Tools/QuartzNext.java
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Date;
import java.util.TimeZone;
import org.quartz.CronExpression;

public class QuartzNext {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        String line;
        StringBuilder out = new StringBuilder();
        while ((line = in.readLine()) != null) {
            String[] parts = line.split("\t");
            try {
                CronExpression cron = new CronExpression(parts[0]);
                cron.setTimeZone(TimeZone.getTimeZone(parts[2]));
                Date cursor = new Date(Long.parseLong(parts[1]));
                int count = Integer.parseInt(parts[3]);
                StringBuilder times = new StringBuilder();
                for (int i = 0; i < count; i++) {
                    cursor = cron.getNextValidTimeAfter(cursor);
                    if (cursor == null) break;
                    if (times.length() > 0) times.append(' ');
                    times.append(cursor.getTime());
                }
                out.append(times.length() == 0 ? "never" : times.toString());
            } catch (Exception e) {
                out.append("error ").append(String.valueOf(e.getMessage()).replace('\n', ' '));
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}
