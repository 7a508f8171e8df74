import { randomUUID } from 'node:crypto'
import type { SqlSession } from '../../records/sql-driver.js'

export interface PlanNode { 'Node Type': string, 'Scan Direction'?: string, 'Relation Name'?: string, 'Index Name'?: string, 'Index Cond'?: string, Filter?: string, 'Rows Removed by Filter'?: number, 'Actual Rows': number, 'Actual Loops': number, Plans?: PlanNode[] }

/**
 * The nodes of a statement's plan that ran on the data (not those of a CASE branch not taken), prepared as the store's
 * named statements are: with the session's plan_cache_mode = force_generic_plan, the plan they come to (parameters
 * unknown). EXPLAIN ANALYZE without timing: rows, no durations.
 */
export async function plan (session: SqlSession, statement: string, types: string, args: string): Promise<PlanNode[]> {
  const name = `s${randomUUID().replaceAll('-', '')}`
  await session.exec(`PREPARE ${name} (${types}) AS ${statement}`)
  const [{ 'QUERY PLAN': json }] = await session.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) EXECUTE ${name} (${args})`)
  const nodes: PlanNode[] = []
  const walk = (node: PlanNode): void => {
    if (node['Actual Loops'] > 0) nodes.push(node)
    for (const child of node.Plans ?? []) walk(child)
  }
  walk((typeof json === 'string' ? JSON.parse(json) : json)[0].Plan)
  return nodes
}

/** What a plan read of `table`: per scan its index, condition, filter, and the rows it returned and threw away. */
export const scans = (nodes: PlanNode[], table: string): Array<Record<string, unknown>> => nodes.filter((node) => node['Relation Name'] === table).map((node) => ({
  type: `${node['Node Type']}${node['Scan Direction'] === 'Backward' ? ' Backward' : ''}`, index: node['Index Name'], cond: node['Index Cond'], filter: node.Filter, removed: node['Rows Removed by Filter'] ?? 0, rows: node['Actual Rows'] * node['Actual Loops']
}))
