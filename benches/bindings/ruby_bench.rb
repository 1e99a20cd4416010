# Ruby contenders of benches/bindings/run: stream SOURCE once, touch every row (its length),
# print one RESULT line. Wall and CPU (CLOCK_PROCESS_CPUTIME_ID: every thread) from just
# before the query is sent (after connecting) to the last row.
#
#   ruby_bench.rb MODE CONNINFO SOURCE
#
#   fw      fraiseql_wire: stream.each
#   pg      ruby-pg: send_query + set_single_row_mode, get_result per row
mode, conninfo, source = ARGV
sql = "SELECT data FROM #{source}"
rows = 0
chars = 0

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC, :microsecond)
def cpu_now = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID, :microsecond)

case mode
when "fw"
  require "fraiseql_wire"
  client = FraiseqlWire::Client.new(conninfo)
  t0 = now
  c0 = cpu_now
  client.query(source).stream do |s|
    s.each do |row|
      rows += 1
      chars += row.bytesize
    end
  end
when "pg"
  require "pg"
  conn = PG.connect(conninfo)
  t0 = now
  c0 = cpu_now
  conn.send_query(sql)
  conn.set_single_row_mode
  # The documented single-row loop (PG::Result#stream_each_row reads the same results).
  while (res = conn.get_result)
    res.check
    if res.ntuples == 1
      row = res.getvalue(0, 0)
      rows += 1
      chars += row.bytesize
    end
    res.clear
  end
else
  abort "ruby_bench: unknown mode #{mode}"
end
printf("RESULT rows=%d chars=%d wall_us=%d cpu_us=%d\n", rows, chars, now - t0, cpu_now - c0)
